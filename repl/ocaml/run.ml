(* Sorna's OCaml driver: every run is a toplevel phrase list executed by the toplevel
   that runs this script, so definitions stay for the next; driven by the runner over
   fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md.
   A script run by `ocaml` reaches Toploop but not the rest of the compiler (Parse,
   Env, Location), so a run is `#use`d from a file and told as the toplevel tells it:
   its outcomes ("val x : int = 1", "- : int = 42") are the run's value, unit ones left
   out, and an error is the toplevel's own text. Completion and inspection ask `#show`.
   SIGINT interrupts the run (Sys.Break); the session stays. *)
#directory "+compiler-libs";;

let sorna_in = open_in_bin "/dev/fd/3"
let sorna_out = open_out_bin "/dev/fd/4"
let sorna_file = Filename.temp_file "sorna" ".ml"
let sorna_names = Hashtbl.create 64  (* the values the session defined *)
let () = Sys.set_signal Sys.sigint Sys.Signal_ignore

let sorna_emit kind fields =
  let sizes = List.map (fun f -> string_of_int (String.length f)) fields in
  output_string sorna_out (String.concat " " (kind :: sizes) ^ "\n");
  List.iter (output_string sorna_out) fields;
  flush sorna_out

let sorna_starts prefix s =
  String.length s >= String.length prefix
  && String.sub s 0 (String.length prefix) = prefix

let sorna_after prefix s =
  String.sub s (String.length prefix) (String.length s - String.length prefix)

let rec sorna_replace what by s =
  match String.index_opt s what.[0] with
  | None -> s
  | Some i ->
    let rest = String.sub s i (String.length s - i) in
    if sorna_starts what rest
    then String.sub s 0 i ^ by ^ sorna_replace what by (sorna_after what rest)
    else String.sub s 0 (i + 1) ^ sorna_replace what by (sorna_after (String.make 1 s.[i]) rest)

let sorna_lines text = List.filter (( <> ) "") (String.split_on_char '\n' text)

(* What `f` prints on the formatter it is given and on the standard one (directives
   print there), instead of the run's output. *)
let sorna_text f =
  let buffer = Buffer.create 256 in
  let ppf = Format.formatter_of_buffer buffer in
  Format.pp_print_flush Format.std_formatter ();
  let saved = Format.pp_get_formatter_out_functions Format.std_formatter () in
  Format.pp_set_formatter_out_functions Format.std_formatter
    (Format.pp_get_formatter_out_functions ppf ());
  Fun.protect (fun () -> f ppf)
    ~finally:(fun () ->
        Format.pp_print_flush Format.std_formatter ();
        Format.pp_set_formatter_out_functions Format.std_formatter saved;
        Format.pp_print_flush ppf ());
  Buffer.contents buffer

(* The toplevel's "Exception: Failure \"boom\"." -> ("Failure", the rest). *)
let sorna_exception line =
  let rest = String.trim (sorna_after "Exception: " line) in
  let stop = try String.index rest ' ' with Not_found -> String.length rest in
  let name = String.sub rest 0 stop in
  let name = if String.length name > 0 && name.[String.length name - 1] = '.'
    then String.sub name 0 (String.length name - 1) else name in
  if name = "Stdlib.Sys.Break" || name = "Sys.Break" then ("Interrupt", "")
  else (name, rest)

let sorna_report name message before =
  sorna_emit "error" [name; message; message ^ "\n"; if before then "1" else "0"]

(* The toplevel's text of an error that stopped `code` before it ran (a syntax or type
   error): `#use` of it alone, which stops at the same error. *)
let sorna_error_text code =
  let out = open_out_bin sorna_file in
  output_string out code;
  close_out out;
  let text = sorna_text (fun ppf -> ignore (Toploop.use_file ppf sorna_file)) in
  String.trim (sorna_replace ("\"" ^ sorna_file ^ "\"") "\"//toplevel//\"" text)

let sorna_source code (phrase : Parsetree.toplevel_phrase) =
  let span (loc : Location.t) =
    String.sub code loc.loc_start.pos_cnum (loc.loc_end.pos_cnum - loc.loc_start.pos_cnum) in
  match phrase with
  | Ptop_def [] -> ""
  | Ptop_def (first :: _ as items) ->
    let last = List.nth items (List.length items - 1) in
    span { first.pstr_loc with loc_end = last.pstr_loc.loc_end }
  | Ptop_dir dir -> span dir.pdir_loc

let sorna_remember outcome =
  if sorna_starts "val " outcome then begin
    let name = sorna_after "val " outcome in
    let stop = try String.index name ' ' with Not_found -> String.length name in
    Hashtbl.replace sorna_names (String.sub name 0 stop) ()
  end

let sorna_run code =
  match !Toploop.parse_use_file (Lexing.from_string code) with
  | exception _ -> sorna_report "SyntaxError" (sorna_error_text code) true
  | phrases ->
    let shown = ref [] and failure = ref None in
    Sys.catch_break true;
    (try
       List.iter (fun phrase ->
           if !failure = None then
             let ok = ref true in
             match sorna_text (fun ppf -> ok := Toploop.execute_phrase true ppf phrase) with
             | text when !ok ->
               List.iter (fun line -> sorna_remember line;
                           if line <> "- : unit = ()" then shown := line :: !shown)
                 (sorna_lines text)
             | text -> failure := Some (`Raised text)
             | exception Sys.Break -> failure := Some (`Raised "Interrupted.")
             | exception _ -> failure := Some (`Refused (sorna_source code phrase)))
         phrases
     with Sys.Break -> if !failure = None then failure := Some (`Raised "Interrupted."));
    Sys.catch_break false;
    Sys.set_signal Sys.sigint Sys.Signal_ignore;
    flush stdout; flush stderr;
    if !shown <> [] then sorna_emit "result" [String.concat "\n" (List.rev !shown)];
    match !failure with
    | None -> ()
    | Some (`Raised text) ->
      (match List.find_opt (sorna_starts "Exception: ") (sorna_lines text) with
       | Some line -> let name, message = sorna_exception line in
         sorna_report name message false
       | None -> sorna_report "Interrupt" "" false)
    | Some (`Refused source) ->
      sorna_report "Error" (sorna_error_text source) (!shown = [])

(* What a directive prints, e.g. `#show List`. *)
let sorna_directive text =
  try
    let phrase = !Toploop.parse_toplevel_phrase (Lexing.from_string (text ^ ";;")) in
    sorna_text (fun ppf -> ignore (Toploop.execute_phrase false ppf phrase))
  with _ -> ""

(* The value names a `#show` of a module lists ("val map : ..."). *)
let sorna_values text =
  List.filter_map (fun line ->
      let line = String.trim line in
      if sorna_starts "val " line || sorna_starts "external " line then
        let rest = sorna_after (if line.[0] = 'v' then "val " else "external ") line in
        let stop = try String.index rest ' ' with Not_found -> String.length rest in
        Some (String.sub rest 0 stop)
      else None) (String.split_on_char '\n' text)

(* Completion (between runs): the session's values and Stdlib's, or a module's when
   the token names one ("List.ma"). *)
let sorna_complete token =
  let names, head, prefix = match String.rindex_opt token '.' with
    | Some i ->
      let m = String.sub token 0 i in
      sorna_values (sorna_directive ("#show " ^ m)), m ^ ".",
      String.sub token (i + 1) (String.length token - i - 1)
    | None ->
      Hashtbl.fold (fun n () acc -> n :: acc) sorna_names []
      @ sorna_values (sorna_directive "#show Stdlib"), "", token in
  let found = List.sort_uniq compare (List.filter (sorna_starts prefix) names) in
  String.concat "\n" (List.map (( ^ ) head) (List.filteri (fun i _ -> i < 500) found))

(* Inspection (between runs): what `#show` says of a name. *)
let sorna_inspect token =
  if token = "" || String.contains token ';' || String.contains token '#' then ""
  else String.trim (sorna_directive ("#show " ^ token))

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
  with End_of_file -> (try Sys.remove sorna_file with Sys_error _ -> ()); exit 0
