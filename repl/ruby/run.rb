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
  message = error.is_a?(SystemExit) ? error.status.to_s : error.message
  sorna_emit("error", name, message, trace, before ? "1" : "0")
end

trap("INT") { raise Interrupt } # the default, said out loud: user code may change it

SORNA_KEYWORDS = %w[alias and begin break case class def defined? do else elsif end
                    ensure false for if in module next nil not or redo rescue retry return
                    self super then true undef unless until when while yield].freeze

# Completion (between runs): local, global and instance variables, constants, the
# methods main may call, keywords; after `name.`, the methods of the object a local
# variable or a constant holds (looked up, never evaluated).
def sorna_complete(token)
  if (found = token.match(/\A(.+)\.(\w*[?!]?)\z/))
    receiver, prefix = found[1], found[2]
    object = sorna_lookup(receiver)
    return [] if object.equal?(SORNA_KEYWORDS)
    names, head = object.methods.map(&:to_s), receiver + "."
  elsif (found = token.match(/\A(.+)::(\w*)\z/))
    receiver, prefix = found[1], found[2]
    object = sorna_lookup(receiver)
    return [] unless object.is_a?(Module)
    names, head = object.constants.map(&:to_s), receiver + "::"
  else
    prefix, head = token, ""
    names = SORNA_BINDING.local_variables + global_variables + Object.constants +
            SORNA_BINDING.receiver.private_methods + SORNA_BINDING.receiver.methods +
            SORNA_BINDING.receiver.instance_variables + SORNA_KEYWORDS
    names = names.map(&:to_s)
  end
  names.select { |n| n.start_with?(prefix) && !n.start_with?("sorna_", "SORNA_") }
       .uniq.sort.first(500).map { |n| head + n }
end

# Inspection (between runs): a value's class and inspect, or a method's parameters and
# owner.
def sorna_inspect(token)
  receiver, name = token.include?(".") ? token.split(".", 2) : [nil, token]
  object = receiver ? sorna_lookup(receiver) : SORNA_BINDING.receiver
  return "" if object.equal?(SORNA_KEYWORDS)
  if receiver.nil? && !(value = sorna_lookup(name)).equal?(SORNA_KEYWORDS)
    return "#{name}: #{value.class}\n#{value.inspect[0, 4000]}"
  end
  return "" unless object.respond_to?(name, true)
  method = object.method(name)
  "#{token}(#{sorna_parameters(method)}) in #{method.owner}"
end

def sorna_parameters(method)
  method.parameters.map do |kind, name|
    { req: name.to_s, opt: "#{name} = ...", rest: "*#{name}", keyreq: "#{name}:",
      key: "#{name}: ...", keyrest: "**#{name}", block: "&#{name}" }.fetch(kind, name.to_s)
  end.join(", ")
end

def sorna_lookup(name)
  if SORNA_BINDING.local_variable_defined?(name.to_sym)
    SORNA_BINDING.local_variable_get(name.to_sym)
  elsif name.match?(/\A[A-Z]\w*(::[A-Z]\w*)*\z/) && Object.const_defined?(name)
    Object.const_get(name)
  else
    SORNA_KEYWORDS # nothing to look up
  end
rescue NameError
  SORNA_KEYWORDS
end

loop do
  header = SORNA_IN.gets or exit(0)
  kind, size = header.split
  size = size.to_i
  code = (size > 0 ? SORNA_IN.read(size) : "").force_encoding("UTF-8")
  if kind == "complete"
    matches = (sorna_complete(code) rescue [])
    sorna_emit("matches", matches.join("\n"))
    next
  elsif kind == "inspect"
    sorna_emit("found", (sorna_inspect(code) rescue ""))
    next
  end
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
