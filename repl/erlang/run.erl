#!/usr/bin/env escript
%% Sorna's Erlang driver (an escript): every run is parsed as expressions and evaluated
%% with the bindings the runs before it left, so variables stay for the next; driven by
%% the runner over fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in
%% docs/PROTOCOL.md. As in the Erlang shell, a run's value is shown (but not ok). The
%% BEAM keeps SIGINT for its break menu, so an interrupt comes as SIGUSR1: the run's
%% process is killed, the session goes on.
-module(run).
-mode(compile).
-behaviour(gen_event).
-export([main/1, init/1, handle_event/2, handle_call/2]).

init(Driver) -> {ok, Driver}.
handle_event(sigusr1, Driver) -> Driver ! sorna_interrupt, {ok, Driver};
handle_event(_Other, Driver) -> {ok, Driver}.
handle_call(_Request, Driver) -> {ok, ok, Driver}.

main(_) ->
    {ok, In} = file:open("/dev/fd/3", [read, binary, raw, read_ahead]),
    {ok, Out} = file:open("/dev/fd/4", [write, binary, raw]),
    io:setopts([{encoding, unicode}]),
    os:set_signal(sigusr1, handle),
    ok = gen_event:add_handler(erl_signal_server, ?MODULE, self()),
    loop(In, Out, erl_eval:new_bindings()).

loop(In, Out, Bindings) ->
    case file:read_line(In) of
        {ok, Header} ->
            [Kind, Size] = string:split(string:trim(Header, trailing, "\n"), " "),
            Code = case binary_to_integer(Size) of
                       0 -> <<>>;
                       N -> {ok, Data} = file:read(In, N), Data
                   end,
            case Kind of
                <<"complete">> ->
                    emit(Out, <<"matches">>, [safely(fun() -> complete(Code, Bindings) end)]),
                    loop(In, Out, Bindings);
                <<"inspect">> ->
                    emit(Out, <<"found">>, [safely(fun() -> describe(Code, Bindings) end)]),
                    loop(In, Out, Bindings);
                _ ->
                    Next = run(Out, unicode:characters_to_list(Code), Bindings),
                    emit(Out, <<"done">>, []),
                    loop(In, Out, Next)
            end;
        _ ->
            halt(0)
    end.

emit(Out, Kind, Fields) ->
    Data = [unicode:characters_to_binary(F) || F <- Fields],
    Sizes = [integer_to_binary(byte_size(D)) || D <- Data],
    ok = file:write(Out, [lists:join(<<" ">>, [Kind | Sizes]), <<"\n">> | Data]).

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
            {Worker, Ref} = spawn_monitor(fun() ->
                Result = try erl_eval:exprs(Exprs, Bindings) of
                             {value, Value, New} -> {ok, Value, New}
                         catch Class:Reason:Stack ->
                             {error, Class, Reason, Stack}
                         end,
                Driver ! {sorna_result, Result}
            end),
            wait(Out, Worker, Ref, Bindings)
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
