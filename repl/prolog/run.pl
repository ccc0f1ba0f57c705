% Sorna's Prolog (SWI-Prolog) driver: a run's clauses are added to the session's
% program (a predicate the run defines replaces the one of the same name), its
% directives (:- Goal) and queries (?- Goal) are run, the first answer of a query shown
% as the toplevel shows it ("X = 42.", "false."); driven by the runner over fds 3 (runs
% in) and 4 (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md. SIGINT
% interrupts the run; the session goes on.
:- module(sorna_driver, []).
:- use_module(library(readutil)).

:- initialization(main, main).

:- dynamic running/0.

sorna_interrupt(_Signal) :- running, throw(sorna_interrupted).
sorna_interrupt(_Signal).

main :-
    on_signal(int, _, sorna_driver:sorna_interrupt),
    open('/dev/fd/3', read, In, [type(binary)]),
    open('/dev/fd/4', write, Out, [type(binary)]),
    loop(In, Out).

loop(In, Out) :-
    read_line_to_codes(In, Header),
    (   Header == end_of_file
    ->  halt(0)
    ;   atom_codes(HeaderAtom, Header),
        atomic_list_concat([Kind, SizeAtom], ' ', HeaderAtom),
        atom_number(SizeAtom, Size),
        read_body(In, Size, Code),
        answer(Kind, Code, Out),
        loop(In, Out)
    ).

read_body(_, 0, "") :- !.
read_body(In, Size, Code) :-
    length(Bytes, Size),
    maplist(get_byte(In), Bytes),
    phrase(utf8_codes(Codes), Bytes),
    string_codes(Code, Codes).

emit(Out, Kind, Fields) :-
    maplist([F, B]>>(string_codes(F, C), phrase(utf8_codes(C), B)), Fields, Data),
    maplist(length, Data, Sizes),
    atomic_list_concat([Kind|Sizes], ' ', Header),
    atom_codes(Header, HeaderCodes),
    maplist(put_byte(Out), HeaderCodes), put_byte(Out, 10),
    forall(member(D, Data), maplist(put_byte(Out), D)),
    flush_output(Out).

answer(complete, Code, Out) :- !,
    catch(complete(Code, Text), _, Text = ""), emit(Out, matches, [Text]).
answer(inspect, Code, Out) :- !,
    catch(describe(Code, Text), _, Text = ""), emit(Out, found, [Text]).
answer(_, Code, Out) :-
    run(Code, Out),
    flush_output(user_output), flush_output(user_error),
    emit(Out, done, []).

report(Out, Error, Before) :-
    (   Error == sorna_interrupted -> Name = "Interrupt", Message = ""
    ;   Error = error(Formal, _), compound(Formal) -> functor(Formal, Name0, _),
        atom_string(Name0, Name), format(string(Message), "~q", [Error])
    ;   Error = error(Formal, _), atom(Formal) -> atom_string(Formal, Name),
        format(string(Message), "~q", [Error])
    ;   Name = "throw", format(string(Message), "~q", [Error])
    ),
    ( Before -> Flag = "1" ; Flag = "0" ),
    format(string(Trace), "~w: ~w~n", [Name, Message]),
    emit(Out, error, [Name, Message, Trace, Flag]).

terms(Stream, Terms) :-
    read_term(Stream, Term, [variable_names(Names), module(user)]),
    (   Term == end_of_file -> Terms = []
    ;   Terms = [Term-Names|Rest], terms(Stream, Rest)
    ).

run(Code, Out) :-
    catch(setup_call_cleanup(open_string(Code, Stream), terms(Stream, Terms), close(Stream)),
          Error, (report(Out, Error, true), fail)),
    !,
    replace_defined(Terms),
    catch(setup_call_cleanup(assertz(running), run_terms(Terms, Out), retractall(running)),
          Error2, (flush_output(user_output), report(Out, Error2, false))).
run(_, _).

% A predicate the run defines replaces the session's definition of it, as a reloaded
% file's would.
replace_defined(Terms) :-
    findall(Name/Arity,
            ( member(Term-_, Terms), clause_head(Term, Head), functor(Head, Name, Arity) ),
            Defined),
    sort(Defined, Predicates),
    forall(member(Name/Arity, Predicates),
           ( functor(Head, Name, Arity),
             catch(( dynamic(user:Name/Arity), retractall(user:Head) ), _, true) )).

clause_head((?- _), _) :- !, fail.
clause_head((:- _), _) :- !, fail.
clause_head((Head :- _), Head) :- !.
clause_head(Head, Head).

run_terms([], _).
run_terms([(?- Goal)-Names|Rest], Out) :- !,
    (   call(user:Goal)
    ->  shown(Names, Text)
    ;   Text = "false."
    ),
    flush_output(user_output),
    ( Text == "" -> true ; emit(Out, result, [Text]) ),
    run_terms(Rest, Out).
run_terms([(:- Goal)-_|Rest], Out) :- !,
    ( call(user:Goal) -> true ; print_message(warning, goal_failed(directive, Goal)) ),
    run_terms(Rest, Out).
run_terms([Clause-_|Rest], Out) :-
    assertz(user:Clause),
    run_terms(Rest, Out).

% A query's answer as the toplevel shows it; nothing for `true` (no named variable).
shown(Names, Text) :-
    exclude([Name=_]>>sub_atom(Name, 0, 1, _, '_'), Names, Visible),
    (   Visible == []
    ->  Text = ""
    ;   maplist([Name=Value, Part]>>format(string(Part), "~w = ~W",
                                           [Name, Value, [quoted(true), portray(true),
                                                          spacing(next_argument)]]),
                Visible, Parts),
        atomic_list_concat(Parts, ',\n', Joined),
        format(string(Text), "~w.", [Joined])
    ).

% Completion (between runs): the predicates of user and the built-in ones, by name.
complete(Token, Text) :-
    atom_string(Prefix, Token),
    findall(Name, ( ( current_predicate(user:Name/_) ; current_predicate(system:Name/_) ),
                   atom_concat(Prefix, _, Name) ), Found),
    sort(Found, Sorted),
    ( length(Sorted, N), N > 500 -> length(First, 500), append(First, _, Sorted)
    ; First = Sorted ),
    atomic_list_concat(First, '\n', Joined),
    atom_string(Joined, Text).

% Inspection (between runs): a predicate's clauses, or that it is built in.
describe(Token, Text) :-
    atom_string(Name, Token),
    (   current_predicate(user:Name/Arity), functor(Head, Name, Arity),
        \+ predicate_property(user:Head, built_in),
        predicate_property(user:Head, number_of_clauses(_))
    ->  with_output_to(string(Text), listing(user:Name))
    ;   current_predicate(Name/Arity)
    ->  format(string(Text), "~w/~w: built in", [Name, Arity])
    ;   Text = ""
    ).
