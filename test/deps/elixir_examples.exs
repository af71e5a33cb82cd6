# The examples of docs/elixir.md, run by test/deps/run.sh in a throwaway
# mix project depending on pyport (`mix run elixir_examples.exs`). Each
# match is one example; a mismatch raises and the run fails.
{:ok, _} = Application.ensure_all_started(:pyport)

checks = [
  fn -> {:ok, 25} = :py.eval("x * y", %{x: 5, y: 5}) end,
  fn -> {:ok, 4.0} = :py.call(:math, :sqrt, [16]) end,
  fn -> {:ok, [3, 2, 1]} = :py.call(:builtins, :sorted, [[1, 3, 2]], %{reverse: true}) end,
  fn -> {:ok, "[1, \"two\"]"} = :py.call(:json, :dumps, [[1, "two"]]) end,
  fn -> {:ok, [0, 1, 4, 9, 16]} = :py.stream_eval("(x**2 for x in range(5))") end,
  fn -> {:ok, :none} = :py.eval("None") end,
  fn -> {:error, {:ZeroDivisionError, _}} = :py.eval("1/0") end,
  fn ->
    :ok = :py.start_pool(:scripts, size: 1, python_path: [System.tmp_dir!()])
    {:ok, 3} = :py.eval("1 + 2", %{}, pool: :scripts)
    :ok = :py.stop_pool(:scripts)
  end,
  fn ->
    {:ok, prefix} = :py.eval("__import__('sys').prefix")
    true = is_binary(prefix)
  end,
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
