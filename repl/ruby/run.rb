# Sorna's Ruby driver: one Binding for the whole session, driven by the runner over
# fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in docs/PROTOCOL.md.
$stdout.sync = true
$stderr.sync = true
SORNA_IN = IO.new(3, "rb")
SORNA_OUT = IO.new(4, "wb")
SORNA_OUT.sync = true
SORNA_BINDING = TOPLEVEL_BINDING

def sorna_emit(kind, *fields)
  fields = fields.map { |f| f.to_s.b }
  SORNA_OUT.write(([kind] + fields.map(&:bytesize)).join(" ") + "\n" + fields.join)
end

def sorna_report(error, before)
  name = error.is_a?(Interrupt) ? "Interrupt" : error.class.name
  trace = error.full_message(highlight: false) rescue error.message
  sorna_emit("error", name, error.message, trace, before ? "1" : "0")
end

trap("INT") { raise Interrupt } # the default, said out loud: user code may change it

loop do
  header = SORNA_IN.gets or exit(0)
  size = header.split[1].to_i
  code = (size > 0 ? SORNA_IN.read(size) : "").force_encoding("UTF-8")
  begin
    value = eval(code, SORNA_BINDING, "<input>", 1)
    sorna_emit("result", value.inspect) unless value.nil?
  rescue SyntaxError => e
    sorna_report(e, true)
  rescue Exception => e # SystemExit and Interrupt too: the session goes on
    sorna_report(e, false)
  end
  sorna_emit("done")
end
