#!/usr/bin/env escript
%%! -noinput
%% Sorna's Erlang driver (an escript): every run is parsed as expressions and evaluated
%% with the bindings the runs before it left, so variables stay for the next; driven by
%% the runner over fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in
%% docs/PROTOCOL.md. As in the Erlang shell, a run's value is shown (but not ok). The
%% BEAM keeps SIGINT for its break menu and SIGUSR1 makes it dump and exit, so an
%% interrupt comes as SIGUSR2: the run's process is killed, the session goes on.
%%
%% Standard input: the BEAM's own reader would wait on fd 0 all the time, and the runner
%% takes a wait on fd 0 for a program asking for input; so the BEAM runs with -noinput
%% and a run's group leader is an io server of ours that reads fd 0 only while code asks
%% for input. `escript run.erl --program FILE ARGS` runs a whole escript the same way.
-module(run).
-mode(compile).
-behaviour(gen_event).
-export([main/1, init/1, handle_event/2, handle_call/2]).

init(Driver) -> {ok, Driver}.
handle_event(sigusr2, Driver) -> Driver ! sorna_interrupt, {ok, Driver};
handle_event(_Other, Driver) -> {ok, Driver}.
handle_call(_Request, Driver) -> {ok, ok, Driver}.

%% The pipes are a port: the BEAM's file reads block on a pipe until a whole buffer is in.
main(["--program", File | Args]) ->
    group_leader(io_server(), self()),
    program(File, Args);
main(_) ->
    Port = open_port({fd, 3, 4}, [binary, eof]),
    io:setopts([{encoding, unicode}]),
    os:set_signal(sigusr2, handle),
    ok = gen_event:add_handler(erl_signal_server, ?MODULE, self()),
    loop(Port, <<>>, erl_eval:new_bindings()).

loop(Out, Buffer, Bindings) ->
    {Kind, Code, Rest} = request(Out, Buffer),
    case Kind of
        <<"complete">> ->
            emit(Out, <<"matches">>, [safely(fun() -> complete(Code, Bindings) end)]),
            loop(Out, Rest, Bindings);
        <<"inspect">> ->
            emit(Out, <<"found">>, [safely(fun() -> describe(Code, Bindings) end)]),
            loop(Out, Rest, Bindings);
        _ ->
            Next = run(Out, unicode:characters_to_list(Code), Bindings),
            emit(Out, <<"done">>, []),
            loop(Out, Rest, Next)
    end.

%% One request off the port: `<kind> <size>\n` and that many bytes.
request(Port, Buffer) ->
    case binary:split(Buffer, <<"\n">>) of
        [Header, Rest] ->
            [Kind, Size] = binary:split(Header, <<" ">>),
            N = binary_to_integer(Size),
            <<Code:N/binary, After/binary>> = fill(Port, Rest, N),
            {Kind, Code, After};
        [_] ->
            request(Port, more(Port, Buffer))
    end.

fill(_Port, Buffer, N) when byte_size(Buffer) >= N -> Buffer;
fill(Port, Buffer, N) -> fill(Port, more(Port, Buffer), N).

more(Port, Buffer) ->
    receive
        {Port, {data, Data}} -> <<Buffer/binary, Data/binary>>;
        {Port, eof} -> halt(0)
    end.

emit(Out, Kind, Fields) ->
    Data = [unicode:characters_to_binary(F) || F <- Fields],
    Sizes = [integer_to_binary(byte_size(D)) || D <- Data],
    true = port_command(Out, [lists:join(<<" ">>, [Kind | Sizes]), <<"\n">> | Data]).

safely(Fun) ->
    try Fun() catch _:_ -> <<>> end.

report(Out, Name, Message, Trace, Before) ->
    emit(Out, <<"error">>, [Name, Message, Trace, if Before -> <<"1">>; true -> <<"0">> end]).

text(Format, Args) -> unicode:characters_to_binary(io_lib:format(Format, Args)).

parse(Code) ->
    case erl_scan:string(Code, 1) of
        {ok, [], _} -> {ok, []};
        {ok, Tokens, End} ->
            Ended = case lists:last(Tokens) of
                        {dot, _} -> Tokens;
                        _ -> Tokens ++ [{dot, End}]
                    end,
            parse_forms(Ended, []);
        {error, {_, Module, Reason}, _} -> {error, Module:format_error(Reason)}
    end.

%% Expression sequences, each ended by a dot.
parse_forms([], Exprs) -> {ok, Exprs};
parse_forms(Tokens, Exprs) ->
    {Form, Rest} = lists:splitwith(fun(T) -> element(1, T) =/= dot end, Tokens),
    [Dot | After] = Rest,
    case erl_parse:parse_exprs(Form ++ [Dot]) of
        {ok, Parsed} -> parse_forms(After, Exprs ++ Parsed);
        {error, {_, Module, Reason}} -> {error, Module:format_error(Reason)}
    end.

run(Out, Code, Bindings) ->
    receive sorna_interrupt -> ok after 0 -> ok end,  % one meant for a run that ended
    case parse(Code) of
        {error, Message} ->
            Text = unicode:characters_to_binary(Message),
            report(Out, <<"SyntaxError">>, Text, <<"SyntaxError: ", Text/binary, "\n">>, true),
            Bindings;
        {ok, []} ->
            Bindings;
        {ok, Exprs} ->
            Driver = self(),
            Input = io_server(),
            {Worker, Ref} = spawn_monitor(fun() ->
                group_leader(Input, self()),
                Result = try erl_eval:exprs(Exprs, Bindings) of
                             {value, Value, New} -> {ok, Value, New}
                         catch Class:Reason:Stack ->
                             {error, Class, Reason, Stack}
                         end,
                Driver ! {sorna_result, Result}
            end),
            Next = wait(Out, Worker, Ref, Bindings),
            exit(Input, kill),
            Next
    end.

wait(Out, Worker, Ref, Bindings) ->
    receive
        {sorna_result, {ok, Value, New}} ->
            erlang:demonitor(Ref, [flush]),
            Value =/= ok andalso emit(Out, <<"result">>, [text("~tp", [Value])]),
            New;
        {sorna_result, {error, Class, Reason, Stack}} ->
            erlang:demonitor(Ref, [flush]),
            Name = case Reason of
                       {Tag, _} when is_atom(Tag) -> atom_to_binary(Tag);
                       Tag when is_atom(Tag) -> atom_to_binary(Tag);
                       _ -> atom_to_binary(Class)
                   end,
            Trace = erl_error:format_exception(Class, Reason, Stack),
            report(Out, Name, text("~tp", [Reason]), unicode:characters_to_binary(Trace),
                   false),
            Bindings;
        sorna_interrupt ->
            exit(Worker, kill),
            receive {'DOWN', Ref, _, _, _} -> ok end,
            report(Out, <<"Interrupt">>, <<>>, <<"interrupted\n">>, false),
            Bindings;
        {'DOWN', Ref, _, _, Reason} ->
            report(Out, <<"exit">>, text("~tp", [Reason]), text("~tp~n", [Reason]), false),
            Bindings
    end.

%% Completion (between runs): the session's variables, or a module's functions after
%% `module:`.
complete(Token, Bindings) ->
    Text = unicode:characters_to_list(Token),
    {Head, Prefix, Names} =
        case string:split(Text, ":") of
            [Module, Prefix0] ->
                M = list_to_atom(Module),
                Functions = case code:ensure_loaded(M) of
                                {module, M} -> [atom_to_list(F) || {F, _} <- M:module_info(exports)];
                                _ -> []
                            end,
                {Module ++ ":", Prefix0, Functions};
            [Prefix0] ->
                {"", Prefix0, [atom_to_list(V) || {V, _} <- erl_eval:bindings(Bindings)]}
        end,
    Found = lists:usort([N || N <- Names, lists:prefix(Prefix, N)]),
    unicode:characters_to_binary(lists:join("\n", [Head ++ N || N <- lists:sublist(Found, 500)])).

%% Inspection (between runs): a variable's value, or a function's arities.
describe(Token, Bindings) ->
    Text = unicode:characters_to_list(Token),
    case erl_eval:binding(list_to_atom(Text), Bindings) of
        {value, Value} -> text("~ts = ~tp", [Text, Value]);
        unbound ->
            case string:split(Text, ":") of
                [Module, Function] ->
                    M = list_to_atom(Module), F = list_to_atom(Function),
                    {module, M} = code:ensure_loaded(M),
                    Arities = [A || {G, A} <- M:module_info(exports), G =:= F],
                    case Arities of
                        [] -> <<>>;
                        _ -> text("~ts/~s", [Text, lists:join(",", [integer_to_list(A) || A <- Arities])])
                    end;
                _ -> <<>>
            end
    end.

%% -- standard input: an io server (the Erlang I/O protocol) that reads fd 0 only while
%% a request waits for it, and sends everything else to the BEAM's own standard_io.

io_server() ->
    Output = group_leader(),
    spawn(fun() -> serve(Output, <<>>) end).

serve(Output, Buffer) ->
    receive
        {io_request, From, ReplyAs, Request} ->
            {Reply, Left} = request(Request, Output, Buffer),
            From ! {io_reply, ReplyAs, Reply},
            serve(Output, Left);
        _ ->
            serve(Output, Buffer)
    end.

request({requests, Requests}, Output, Buffer) ->
    lists:foldl(fun(R, {ok, B}) -> request(R, Output, B); (_, Done) -> Done end,
                {ok, Buffer}, Requests);
request({get_line, Encoding, Prompt}, Output, Buffer) ->
    prompt(Output, Prompt),
    case line(Buffer) of
        {eof, Left} -> {eof, Left};
        {Line, Left} -> {chars(Encoding, Line), Left}
    end;
request({get_chars, Encoding, Prompt, N}, Output, Buffer) ->
    prompt(Output, Prompt),
    case fill(Buffer, N) of
        <<>> -> {eof, <<>>};
        Data when byte_size(Data) > N ->
            <<Chars:N/binary, Left/binary>> = Data,
            {chars(Encoding, Chars), Left};
        Data -> {chars(Encoding, Data), <<>>}
    end;
request({get_until, Encoding, Prompt, M, F, As}, Output, Buffer) ->
    prompt(Output, Prompt),
    until(Encoding, M, F, As, [], Buffer);
request(Request, Output, Buffer) ->
    {io:request(Output, Request), Buffer}.

prompt(_Output, '') -> ok;
prompt(_Output, "") -> ok;
prompt(Output, Prompt) -> io:request(Output, {put_chars, unicode, io_lib:format("~ts", [Prompt])}).

chars(latin1, Bin) -> binary_to_list(Bin);
chars(_, Bin) -> unicode:characters_to_list(Bin).

%% The scanner's continuation (io:read, io:fread) fed a line at a time.
until(Encoding, M, F, As, State, Buffer) ->
    {Data, Left} = case line(Buffer) of
                       {eof, L} -> {eof, L};
                       {Line, L} -> {chars(Encoding, Line), L}
                   end,
    case apply(M, F, [State, Data | As]) of
        {done, Result, Rest} when is_list(Rest) ->
            {Result, <<(unicode:characters_to_binary(Rest))/binary, Left/binary>>};
        {done, Result, _} -> {Result, Left};
        {more, Next} when Data =/= eof -> until(Encoding, M, F, As, Next, Left);
        {more, _} -> {eof, Left}
    end.

%% A line off the buffer (and standard input): {Line, Rest}, or {eof, <<>>}.
line(Buffer) ->
    case binary:split(Buffer, <<"\n">>) of
        [Line, Rest] -> {<<Line/binary, "\n">>, Rest};
        [_] ->
            case more_input(Buffer) of
                Buffer when Buffer =:= <<>> -> {eof, <<>>};
                Buffer -> {Buffer, <<>>};
                Longer -> line(Longer)
            end
    end.

fill(Buffer, N) when byte_size(Buffer) >= N -> Buffer;
fill(Buffer, N) ->
    case more_input(Buffer) of
        Buffer -> Buffer;
        Longer -> fill(Longer, N)
    end.

%% What standard input has now, after the buffer (the buffer alone at its end). The
%% port on fd 0 lives only for this one read.
more_input(Buffer) ->
    Port = open_port({fd, 0, 1}, [in, binary, eof]),
    More = receive
               {Port, {data, Data}} -> <<Buffer/binary, Data/binary>>;
               {Port, eof} -> Buffer
           end,
    port_close(Port),
    receive {Port, _} -> ok after 0 -> ok end,
    More.

%% -- a whole program (`--program FILE ARGS`), as escript runs it: its header lines
%% (#!, %%!) skipped, a module of its own (named after the file unless it says), main/1.
program(File, Args) ->
    {ok, Fd} = file:open(File, [read]),
    Line = skip_header(Fd, 1),
    {ok, Epp} = epp:open([{fd, Fd}, {name, File}, {location, Line},
                          {includes, [filename:dirname(File)]}]),
    Forms = forms(Epp, []),
    epp:close(Epp),
    file:close(Fd),
    Named = case [M || {attribute, _, module, M} <- Forms] of
                [] ->
                    [First | Rest] = Forms,
                    Module = list_to_atom(filename:basename(File, ".erl")),
                    [First, {attribute, 1, module, Module}, {attribute, 1, export, [{main, 1}]}
                     | Rest];
                _ -> Forms
            end,
    case compile:forms(Named, [binary, return_errors]) of
        {ok, Name, Binary} ->
            {module, Name} = code:load_binary(Name, File, Binary),
            try Name:main(Args) of
                _ -> halt(0)
            catch Class:Reason:Stack ->
                io:format(standard_error, "escript: exception ~p: ~tp~n  ~tp~n",
                          [Class, Reason, Stack]),
                halt(127)
            end;
        {error, Errors, _} ->
            [io:format(standard_error, "~ts:~p: ~ts~n",
                       [F, location(L), M:format_error(E)]) || {F, Es} <- Errors, {L, M, E} <- Es],
            io:format(standard_error, "escript: There were compilation errors.~n", []),
            halt(127)
    end.

location({Line, _Column}) -> Line;
location(Line) -> Line.

skip_header(Fd, Line) ->
    {ok, At} = file:position(Fd, cur),
    case file:read_line(Fd) of
        {ok, "#!" ++ _} -> skip_header(Fd, Line + 1);
        {ok, "%%!" ++ _} -> skip_header(Fd, Line + 1);
        _ -> {ok, At} = file:position(Fd, At), Line
    end.

forms(Epp, Forms) ->
    case epp:parse_erl_form(Epp) of
        {ok, Form} -> forms(Epp, [Form | Forms]);
        {eof, Line} -> lists:reverse([{eof, Line} | Forms]);
        {error, Error} -> forms(Epp, [{error, Error} | Forms]);
        {warning, _} -> forms(Epp, Forms)
    end.
