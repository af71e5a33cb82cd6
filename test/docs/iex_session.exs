# The docs test's iex: evaluates the expressions of one `iex>` session
# (read from the Erlang term file given) with the pyport application
# started, printing a marker line, then the expression's value inspected.
# Called by erl/test/py_docs_elixir.erl.
[path] = System.argv()
{:ok, [exprs]} = :file.consult(String.to_charlist(path))
{:ok, _} = Application.ensure_all_started(:pyport)

Enum.reduce(Enum.with_index(exprs), [], fn {src, i}, binding ->
  IO.puts("\u001e<<step #{i}>>")
  {value, binding} = Code.eval_string(src, binding)
  IO.puts(inspect(value))
  binding
end)
