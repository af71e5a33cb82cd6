# The examples of docs/elixir.md that need what the Elixir-facing API gains
# (keyword lists as kwargs and locals, charlist names, None as nil): run by
# test/deps/run.sh when PYPORT_TEST_E2=1.
{:ok, _} = Application.ensure_all_started(:pyport)

checks = [
  # keyword lists for kwargs and locals
  fn -> {:ok, [3, 2, 1]} = :py.call(:builtins, :sorted, [[1, 3, 2]], reverse: true) end,
  fn -> {:ok, 25} = :py.eval("x * y", x: 5, y: 5) end,
  # charlist module and function names
  fn -> {:ok, 4.0} = :py.call(~c"math", ~c"sqrt", [16]) end,
  # a pool whose None arrives as nil
  fn ->
    :ok = :py.start_pool(:elixir, size: 1, none_as: nil)
    {:ok, nil} = :py.eval("None", %{}, pool: :elixir)
    :ok = :py.stop_pool(:elixir)
  end
]

Enum.each(checks, fn check -> check.() end)
IO.puts("examples: #{length(checks)} ok")
