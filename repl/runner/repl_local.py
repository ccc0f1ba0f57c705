"""The daemon's answers and events in-process, for fakes and tests."""

from repl_dispatch import answer
from repl_drivers import make_program_driver, python_driver
from repl_files import FileStore
from repl_session import Session
from repl_wire import MAX_FILE_SIZE, RequestError, error_reply, pack, parse_request


class LocalDaemon:
    """The daemon's answers and events in-process: no socket, thread or signal.

    `handle(request)` returns the messages the real daemon would send for it, in order.
    A run happens inside the `execute` call and its events are the answer, unless
    `hold` is set: then the run is accepted (further executes get 409, as while real
    code runs) and goes on until `release()` returns its events, or until an interrupt
    naming it ends it with KeyboardInterrupt (unless `ignore_interrupts`, code that
    catches KeyboardInterrupt). `restart` drops a held run, as the real daemon's exec
    does. Reads of standard input call `read_input(prompt, password)` (default:
    EOFError): user code cannot be suspended without a thread.
    """

    def __init__(self, work_dir, read_input=None, max_file_size=MAX_FILE_SIZE):
        self.work_dir = work_dir
        self.read_input = read_input or self._no_input
        self.files = FileStore(work_dir, max_file_size)
        self.hold = False
        self.ignore_interrupts = False
        self._held = None  # (run id, code, program) of a run in progress
        self._sent = []
        self.session = self._new_session()

    @staticmethod
    def _no_input(prompt, password):
        raise EOFError("no input is available in this kernel")

    def _new_session(self):
        driver = python_driver()
        return Session(self._collect, driver, work_dir=self.work_dir,
                       read_input=self.read_input,
                       program_driver=make_program_driver(driver, self.work_dir,
                                                          standalone=True))

    def _collect(self, event):
        self._sent.append(event)

    def handle_payload(self, payload):
        """Like `handle`, from and to msgpack bytes."""
        try:
            request = parse_request(payload)
        except RequestError as e:
            return [pack(error_reply(e.request_id, e))]
        return [pack(m) for m in self.handle(request)]

    @property
    def running(self):
        return self._held is not None

    def release(self):
        """The events of the held run, which ends now; [] when there is none."""
        if self._held is None:
            return []
        (run_id, code, program), self._held = self._held, None
        self._sent = []
        self.session.execute(run_id, code, program)
        sent, self._sent = self._sent, []
        return sent

    def handle(self, request):
        request_id, action = request.get("id"), request.get("action")
        if action == "interrupt" and self.ignore_interrupts:  # signalled, the code goes on
            return [{"id": request_id, "reply": 200, "interrupted":
                     self._held is not None and request.get("run") in (None, self._held[0])}]
        events = []

        def start_run(run_id, code, program):
            self._held = (run_id, code, program)
            if not self.hold:
                events.extend(self.release())

        try:
            reply = answer(request, self.session, self.files, start_run, lambda: None)
        except RequestError as e:
            return [error_reply(request_id, e)]
        if action == "interrupt" and reply["interrupted"]:
            events = self.release()
        if action == "restart":
            self._held = None
            self.session = self._new_session()
        return ([reply] if reply is not None else []) + events
