(* Sorna's OCaml driver: every run is a toplevel phrase list executed by the toplevel
   that runs this script, so definitions stay for the next; driven by the runner over
   fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md.
   As in OCaml's toplevel, a run's last outcome is shown ("- : int = 42"), except unit.
   SIGINT interrupts the run (Sys.Break); the session stays. *)
#directory "+compiler-libs";;

let sorna_in = open_in_bin "/dev/fd/3"
let sorna_out = open_out_bin "/dev/fd/4"
let () = Sys.set_signal Sys.sigint Sys.Signal_ignore

let sorna_emit kind fields =
  let sizes = List.map (fun f -> string_of_int (String.length f)) fields in
  output_string sorna_out (String.concat " " (kind :: sizes) ^ "\n");
  List.iter (output_string sorna_out) fields;
  flush sorna_out

let sorna_report name message before =
  sorna_emit "error" [name; message; name ^ ": " ^ message ^ "\n";
                      if before then "1" else "0"]

let sorna_text f =
  let buffer = Buffer.create 256 in
  let ppf = Format.formatter_of_buffer buffer in
  f ppf;
  Format.pp_print_flush ppf ();
  String.trim (Buffer.contents buffer)

(* "Exception: Failure \"boom\"." -> ("Failure", the text) *)
let sorna_exception text =
  let rest = if String.length text > 11 && String.sub text 0 11 = "Exception: "
             then String.sub text 11 (String.length text - 11) else text in
  let stop = try String.index rest ' ' with Not_found ->
    (try String.index rest '.' with Not_found -> String.length rest) in
  let name = String.sub rest 0 stop in
  let name = if String.length name > 0 && name.[String.length name - 1] = '.'
             then String.sub name 0 (String.length name - 1) else name in
  if name = "Stdlib.Sys.Break" || name = "Sys.Break" || name = "Interrupted"
  then ("Interrupt", "") else (name, rest)

let sorna_run code =
  let lexbuf = Lexing.from_string code in
  Location.init lexbuf "//toplevel//";
  match !Toploop.parse_use_file lexbuf with
  | exception e ->
    sorna_report "SyntaxError" (sorna_text (fun ppf -> Location.report_exception ppf e)) true
  | phrases ->
    let last = ref "" and failed = ref None in
    (try
       Sys.catch_break true;
       List.iter (fun phrase ->
           if !failed = None then begin
             let ok = ref true in
             let text = sorna_text (fun ppf -> ok := Toploop.execute_phrase true ppf phrase) in
             if !ok then last := text else failed := Some text
           end) phrases;
       Sys.set_signal Sys.sigint Sys.Signal_ignore
     with
     | Sys.Break -> Sys.set_signal Sys.sigint Sys.Signal_ignore; failed := Some "Interrupted"
     | e ->
       Sys.set_signal Sys.sigint Sys.Signal_ignore;
       let text = sorna_text (fun ppf -> Location.report_exception ppf e) in
       flush stdout; flush stderr;
       sorna_report "Error" text true;
       failed := Some "");
    flush stdout; flush stderr;
    match !failed with
    | Some "" -> ()
    | Some text -> let name, message = sorna_exception text in
      sorna_report name message false
    | None ->
      if !last <> "" && !last <> "- : unit = ()" then sorna_emit "result" [!last]

(* Completion (between runs): the values the toplevel's environment holds, in a module
   when the token names one ("List.ma"). *)
let sorna_complete token =
  let env = !Toploop.toplevel_env in
  let dot = try Some (String.rindex token '.') with Not_found -> None in
  let prefix, qualifier, head = match dot with
    | None -> token, None, ""
    | Some i -> String.sub token (i + 1) (String.length token - i - 1),
                Longident.unflatten (String.split_on_char '.' (String.sub token 0 i)), String.sub token 0 (i + 1) in
  let names = try Env.fold_values (fun name _ _ acc -> name :: acc) qualifier env []
    with _ -> [] in
  let found = List.sort_uniq compare
      (List.filter (fun n -> String.length n >= String.length prefix
                             && String.sub n 0 (String.length prefix) = prefix) names) in
  String.concat "\n" (List.map (fun n -> head ^ n) (List.filteri (fun i _ -> i < 500) found))

(* Inspection (between runs): a value's type. *)
let sorna_inspect token =
  try
    let _, description =
      Env.find_value_by_name (Option.get (Longident.unflatten (String.split_on_char '.' token)))
        !Toploop.toplevel_env in
    token ^ " : " ^ sorna_text (fun ppf ->
        Printtyp.type_scheme ppf description.Types.val_type)
  with _ -> ""

let () =
  try
    while true do
      let header = input_line sorna_in in
      let space = String.index header ' ' in
      let kind = String.sub header 0 space in
      let size = int_of_string (String.sub header (space + 1)
                                  (String.length header - space - 1)) in
      let code = really_input_string sorna_in size in
      match kind with
      | "complete" -> sorna_emit "matches" [sorna_complete code]
      | "inspect" -> sorna_emit "found" [sorna_inspect code]
      | _ -> sorna_run code; sorna_emit "done" []
    done
  with End_of_file -> exit 0
