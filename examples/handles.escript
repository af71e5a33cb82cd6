#!/usr/bin/env escript
%%! -pa erl/_build/default/lib/pyport/ebin
%% A model loaded once in a worker, then used by many processes through a
%% handle (docs/handles.md). Run from the repository root, after
%% scripts/setup: escript examples/handles.escript
main(_) ->
    {ok, _} = application:ensure_all_started(pyport),
    % The model's code, on every worker of a pool of its own.
    ok = py:start_pool(models, [{size, 2}, {preload, <<"
import time

class Model:
    def __init__(self, weights):
        time.sleep(0.5)              # loading takes a while: done once
        self.weights = weights
        self.served = 0
    def predict(self, xs):
        self.served += 1
        return sum(w * x for w, x in zip(self.weights, xs))

def load(weights):
    return Model(weights)
">>}]),
    % Loaded once: the object stays in the worker, the caller gets a handle.
    {ok, Model} = py:call('__main__', load, [[0.5, 0.25, 2.0]], #{},
                          #{pool => models, return => handle}),
    % Many processes use it; every call runs on the model's worker.
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    [spawn(fun() -> Self ! {done, py:call_method(Model, predict, [[I, 2, 1]])} end)
     || I <- lists:seq(1, 100)],
    Results = [receive {done, {ok, Y}} -> Y end || _ <- lists:seq(1, 100)],
    Ms = erlang:monotonic_time(millisecond) - T0,
    io:format("100 predictions from 100 processes in ~p ms; sum ~p~n", [Ms, lists:sum(Results)]),
    {ok, Served} = py:getattr(Model, served),
    io:format("the model served ~p calls~n", [Served]),
    % Handles can go back into Python as arguments.
    {ok, W} = py:eval(<<"m.weights[2]">>, #{m => Model}, #{pool => models}),
    io:format("m.weights[2] = ~p~n", [W]),
    ok = py:release(Model),
    io:format("after py:release/1: ~p~n", [py:getattr(Model, served)]),
    ok = py:stop_pool(models).
