%% @doc `Pyport.Error', the exception `Pyport.eval!/1..3' and the other
%% `!' functions raise: an Elixir exception struct (`reason' is the
%% `{error, Reason}' that the function without `!' answers, `message' its
%% text), made in Erlang so that no Elixir compiler is needed to build
%% pyport. `rescue e in Pyport.Error' matches it; `Exception.message/1'
%% reads it.
-module('Elixir.Pyport.Error').

-export(['__struct__'/0, '__struct__'/1, exception/1, message/1]).

-type t() :: #{'__struct__' := 'Elixir.Pyport.Error', '__exception__' := true,
               message := binary(), reason := term()}.
-export_type([t/0]).

-spec '__struct__'() -> t().
'__struct__'() ->
    #{'__struct__' => ?MODULE, '__exception__' => true, message => <<"Python call failed">>,
      reason => undefined}.

-spec '__struct__'([{atom(), term()}] | map()) -> t().
'__struct__'(Fields) when is_list(Fields) -> '__struct__'(maps:from_list(Fields));
'__struct__'(Fields) when is_map(Fields) -> maps:merge('__struct__'(), maps:with([message, reason], Fields)).

%% @doc The exception for Reason (`reason: R'), its message made from it.
-spec exception([{atom(), term()}] | map()) -> t().
exception(Fields) ->
    Given = case is_list(Fields) of true -> maps:from_list(Fields); false -> Fields end,
    E = '__struct__'(Given),
    case is_map_key(message, Given) of
        true -> E;
        false -> E#{message => text(maps:get(reason, E))}
    end.

-spec message(t()) -> binary().
message(#{message := Message}) -> Message.

%% A Python exception reads as Python prints it; anything else as a term.
text({Type, Message}) when is_atom(Type), is_binary(Message) ->
    <<(atom_to_binary(Type))/binary, ": ", Message/binary>>;
text(Reason) ->
    unicode:characters_to_binary(io_lib:format("~tp", [Reason])).
