# Sorna's Elixir driver: every run is evaluated with the bindings and environment the
# runs before it left, so variables, aliases and imports stay for the next (modules are
# global); driven by the runner over fds 3 (runs in) and 4 (their ends out); see "Runner
# <-> driver" in docs/PROTOCOL.md. As in IEx, a run's value is shown (but not :ok, what
# IO.puts and most effects return). The BEAM takes SIGINT for its break menu, so an
# interrupt comes as SIGUSR1: the run's process is killed, the session goes on.
defmodule Sorna.Signals do
  @behaviour :gen_event
  def init(driver), do: {:ok, driver}
  def handle_event(:sigusr1, driver), do: (send(driver, :sorna_interrupt); {:ok, driver})
  def handle_event(_other, driver), do: {:ok, driver}
  def handle_call(_request, driver), do: {:ok, :ok, driver}
end

defmodule Sorna.Driver do
  def main do
    {:ok, input} = :file.open(~c"/dev/fd/3", [:read, :binary, :raw, :read_ahead])
    {:ok, output} = :file.open(~c"/dev/fd/4", [:write, :binary, :raw])
    :os.set_signal(:sigusr1, :handle)
    :ok = :gen_event.add_handler(:erl_signal_server, Sorna.Signals, self())
    loop(input, output, [], Code.env_for_eval([]))
  end

  defp loop(input, output, binding, env) do
    case :file.read_line(input) do
      {:ok, header} ->
        [kind, size] = String.split(String.trim_trailing(header, "\n"), " ")
        size = String.to_integer(size)
        code = if size > 0, do: elem(:file.read(input, size), 1), else: ""
        case kind do
          "complete" ->
            emit(output, "matches", [safely(fn -> complete(code, binding) end)])
            loop(input, output, binding, env)
          "inspect" ->
            emit(output, "found", [safely(fn -> inspect_name(code, binding) end)])
            loop(input, output, binding, env)
          _ ->
            {binding, env} = run(output, code, binding, env)
            emit(output, "done", [])
            loop(input, output, binding, env)
        end
      _ ->
        System.halt(0)
    end
  end

  defp emit(output, kind, fields) do
    header = Enum.join([kind | Enum.map(fields, &Integer.to_string(byte_size(&1)))], " ")
    :ok = :file.write(output, [header, "\n" | fields])
  end

  defp safely(fun) do
    try do
      fun.()
    rescue
      _ -> ""
    catch
      _, _ -> ""
    end
  end

  defp report(output, name, message, trace, before) do
    emit(output, "error", [name, message, trace, if(before, do: "1", else: "0")])
  end

  defp run(output, code, binding, env) do
    case Code.string_to_quoted(code, file: "input") do
      {:error, {_meta, message, token}} ->
        text = "#{message_text(message)}#{token}"
        report(output, "SyntaxError", text, "SyntaxError: #{text}\n", true)
        {binding, env}
      {:ok, quoted} ->
        receive do
          :sorna_interrupt -> :ok  # one meant for a run that has ended
        after
          0 -> :ok
        end
        driver = self()
        {worker, ref} = spawn_monitor(fn ->
          result =
            try do
              {:ok, Code.eval_quoted_with_env(quoted, binding, env)}
            rescue
              e -> {:error, inspect(e.__struct__), Exception.message(e),
                    Exception.format(:error, e, __STACKTRACE__)}
            catch
              kind, value -> {:error, Atom.to_string(kind), inspect(value),
                              Exception.format(kind, value, __STACKTRACE__)}
            end
          send(driver, {:sorna_result, result})
        end)
        wait(output, worker, ref, binding, env)
    end
  end

  defp message_text({prefix, suffix}), do: "#{prefix}#{suffix}"
  defp message_text(message), do: to_string(message)

  defp wait(output, worker, ref, binding, env) do
    receive do
      {:sorna_result, {:ok, {value, binding, env}}} ->
        Process.demonitor(ref, [:flush])
        if value != :ok, do: emit(output, "result", [inspect(value, pretty: true)])
        {binding, env}
      {:sorna_result, {:error, name, message, trace}} ->
        Process.demonitor(ref, [:flush])
        report(output, name, message, trace, false)
        {binding, env}
      :sorna_interrupt ->
        Process.exit(worker, :kill)
        receive do
          {:DOWN, ^ref, _, _, _} -> :ok
        end
        report(output, "Interrupt", "", "interrupted\n", false)
        {binding, env}
      {:DOWN, ^ref, _, _, reason} ->
        report(output, "exit", inspect(reason), "#{inspect(reason)}\n", false)
        {binding, env}
    end
  end

  # Completion (between runs): the session's variables and Kernel's functions, or a
  # module's functions after `Module.`.
  defp complete(token, binding) do
    {head, prefix, names} =
      case String.split(token, ".") |> Enum.split(-1) do
        {[], [prefix]} ->
          vars = Enum.map(binding, fn {name, _} -> Atom.to_string(name) end)
          {"", prefix, vars ++ functions(Kernel)}
        {parts, [prefix]} ->
          module = Module.concat(parts)
          {Enum.join(parts, ".") <> ".", prefix,
           if(Code.ensure_loaded?(module), do: functions(module), else: [])}
      end
    names
    |> Enum.filter(&String.starts_with?(&1, prefix))
    |> Enum.uniq() |> Enum.sort() |> Enum.take(500)
    |> Enum.map(&(head <> &1)) |> Enum.join("\n")
  end

  defp functions(module) do
    (module.__info__(:functions) ++ module.__info__(:macros))
    |> Enum.map(fn {name, _arity} -> Atom.to_string(name) end)
  end

  # Inspection (between runs): a variable's value, or a function's arities.
  defp inspect_name(token, binding) do
    case Enum.find(binding, fn {name, _} -> Atom.to_string(name) == token end) do
      {_, value} ->
        "#{token}: #{inspect(value, pretty: true, limit: 50)}"
      nil ->
        {parts, [name]} = Enum.split(String.split(token, "."), -1)
        module = if parts == [], do: Kernel, else: Module.concat(parts)
        arities = for {f, a} <- module.__info__(:functions) ++ module.__info__(:macros),
                      Atom.to_string(f) == name, do: a
        if arities == [], do: "", else: "#{token}/#{Enum.join(Enum.sort(arities), ",")}"
    end
  end
end

Sorna.Driver.main()
