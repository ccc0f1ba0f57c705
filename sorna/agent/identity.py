"""Who an agent is: its id, the host front-ends dial, and what EC2 says about the machine.

Agent ids come from EC2 instance metadata when there is any. To keep machines that are
not on EC2 from sending anything to the link-local metadata address, the service is asked
only when local files say the machine is an EC2 instance (`--instance-metadata auto`, the
default) or when `--instance-metadata URL` names it; `off` never asks.

The lookup runs once, in `makeService`, before the reactor runs, with plain blocking urllib
and a short timeout per request. Doing it asynchronously in `startService` would gain
nothing: the id is the agent's ZMQ identity and the label of its containers, so nothing
can start before it is known, and the wait (only on EC2, about a millisecond there, at
most one timeout when the service does not answer) blocks nobody else.

Precedence: an explicit `--agent-id` wins, else the instance id, else `HOSTNAME:PORT`.
The advertised host: `--advertise-host`, else the address bound with `--listen` (nothing
else reaches the agent then), else the instance's `local-ipv4`, else the local address
routed to the manager.
"""

import ipaddress
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from urllib.parse import urlsplit

from twisted.logger import Logger

from sorna.proto.schema import AGENT_ID_RE

log = Logger(namespace="sorna.agent")

METADATA_URL = "http://169.254.169.254"
DEFAULT_TIMEOUT = 1.0
TOKEN_TTL = 60  # seconds; the token is used within one start-up
MAX_ANSWER = 1024  # bytes; every answer we ask for is a short line

# Local files that say "this is an EC2 instance" without asking the network: Xen
# instances have an ec2-prefixed hypervisor uuid, Nitro ones report the DMI vendor.
EC2_FILES = {
    "hypervisor_uuid": "/sys/hypervisor/uuid",
    "board_vendor": "/sys/class/dmi/id/board_vendor",
    "sys_vendor": "/sys/class/dmi/id/sys_vendor",
    "product_uuid": "/sys/class/dmi/id/product_uuid",
}

_FIELDS = [  # heartbeat key, metadata path, required, valid answer
    ("id", "instance-id", True, re.compile(r"^i-[0-9a-f]{8,17}$")),
    ("type", "instance-type", False, re.compile(r"^[a-z0-9][a-z0-9.-]{0,31}$")),
    ("local_ipv4", "local-ipv4", False, None),
    ("zone", "placement/availability-zone", False, re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")),
]
_TOKEN_RE = re.compile(r"^[A-Za-z0-9+/=_.-]{1,512}$")


class MetadataError(Exception):
    """The metadata service could not be asked, or answered nothing we can use."""


def ec2_evidence(paths=None):
    """The local file that says this machine is an EC2 instance, or None. Reads files
    only; `paths` (keys of EC2_FILES) lets tests point elsewhere."""
    paths = dict(EC2_FILES, **(paths or {}))

    def read(key):
        try:
            with open(paths[key], encoding="ascii", errors="replace") as f:
                return f.read(256).strip()
        except OSError:
            return ""

    for key in ("hypervisor_uuid", "product_uuid"):
        if read(key).lower().startswith("ec2"):
            return paths[key]
    for key in ("board_vendor", "sys_vendor"):
        if read(key) == "Amazon EC2":
            return paths[key]
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the metadata service never redirects; follow nobody elsewhere


def _opener():
    # No proxy: the metadata service is on the link, and an http_proxy variable must not
    # send this request (or its token) anywhere else.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


class _Client:
    def __init__(self, base_url, timeout):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.opener = _opener()
        self.token = None

    def request(self, method, path, headers):
        """The answer as text; HTTPError for an error status; MetadataError otherwise."""
        req = urllib.request.Request(self.base_url + path, method=method, headers=headers)
        started = time.monotonic()
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                body = resp.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError:
            raise
        except (OSError, HTTPException, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            if isinstance(reason, (socket.timeout, TimeoutError)) or (
                    time.monotonic() - started >= self.timeout):
                raise MetadataError(f"{method} {path} got no answer within "
                                    f"{self.timeout:g} s")
            raise MetadataError(f"{method} {path} failed: {reason}")
        if len(body) > MAX_ANSWER:
            raise MetadataError(f"{method} {path} answered more than {MAX_ANSWER} bytes")
        try:
            return body.decode("ascii").strip()
        except UnicodeDecodeError:
            raise MetadataError(f"{method} {path} answered something that is not text")

    def get_token(self):
        """IMDSv2. An error status means the service speaks IMDSv1 only (or something in
        between refuses PUT): go on without a token. No answer at all means there is no
        service: waiting a second timeout for the IMDSv1 requests would only delay start."""
        try:
            token = self.request("PUT", "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL)})
        except urllib.error.HTTPError:
            return None
        if not _TOKEN_RE.match(token):
            return None
        self.token = token
        return token

    def get(self, path):
        headers = {"X-aws-ec2-metadata-token": self.token} if self.token else {}
        return self.request("GET", "/latest/meta-data/" + path, headers)


def fetch_instance_info(base_url=METADATA_URL, timeout=DEFAULT_TIMEOUT):
    """Ask the metadata service at `base_url` (IMDSv2, else IMDSv1) about this instance:
    `{"id", "type", "local_ipv4", "zone"}` (None for what it does not know, except the
    id). Any failure raises MetadataError saying why; each request waits `timeout` s."""
    client = _Client(base_url, timeout)
    client.get_token()
    info = {}
    for key, path, required, pattern in _FIELDS:
        try:
            value = client.get(path)
        except urllib.error.HTTPError as e:
            if required or e.code != 404:
                raise MetadataError(f"GET {path} answered HTTP {e.code}")
            info[key] = None
            continue
        if not _valid(value, pattern):
            raise MetadataError(f"GET {path} answered {value[:40]!r}, which is not "
                                f"a valid {path}")
        info[key] = value
    return info


def _valid(value, pattern):
    if pattern is not None:
        return bool(pattern.match(value))
    try:
        ipaddress.IPv4Address(value)
        return True
    except ValueError:
        return False


def check_setting(value):
    """Validate `--instance-metadata`: auto, off or an http(s) URL. Returns the value;
    ValueError says what is wrong."""
    if value in ("auto", "off"):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be auto, off or a URL such as {METADATA_URL}, not {value}")
    return value


def instance_info(setting, timeout=DEFAULT_TIMEOUT, evidence=ec2_evidence,
                  fetch=fetch_instance_info):
    """What the metadata service says about this machine ({} when not asked or when it
    failed), a sentence for the log saying where that came from, and whether the service
    was asked and failed."""
    if setting == "off":
        return {}, "instance metadata: off", False
    if setting == "auto":
        found = evidence()
        if not found:
            return {}, "instance metadata: not asked, this is not an EC2 instance", False
        url, why = METADATA_URL, f"{found} says EC2"
    else:
        url, why = setting, "--instance-metadata"
    try:
        info = fetch(url, timeout)
    except MetadataError as e:
        return {}, f"instance metadata from {url} ({why}) unavailable: {e}", True
    return info, f"instance metadata from {url}: {info['id']} ({info.get('type')})", False


@dataclass(frozen=True)
class Identity:
    agent_id: str
    host: str  # the host part of the advertised address
    instance: dict = field(default_factory=dict)


def choose(agent_id, port, instance, advertise_host, listen, route_host, hostname):
    """Apply the precedence rules (module docstring). `route_host()` is called only when
    nothing else decides the host, since it looks up a route."""
    chosen_id = agent_id or instance.get("id") or f"{hostname}:{port}"
    if advertise_host:
        host = advertise_host
    elif listen not in ("*", "0.0.0.0", ""):
        host = listen
    elif instance.get("local_ipv4"):
        host = instance["local_ipv4"]
    else:
        host = route_host()
    return Identity(chosen_id, host, dict(instance))


def identify(config, route_host, hostname=None, evidence=ec2_evidence,
             fetch=fetch_instance_info):
    """The agent's Identity from its parsed options; logs one line saying what the
    instance metadata contributed (or why it did not)."""
    explicit = config["agent-id"]
    info, how, failed = instance_info(config["instance-metadata"],
                              config["instance-metadata-timeout"], evidence, fetch)
    chosen = choose(explicit, config["port"], info, config["advertise-host"],
                    config["listen"], route_host, hostname or socket.gethostname())
    if not AGENT_ID_RE.match(chosen.agent_id):
        raise ValueError(f"the agent id {chosen.agent_id!r} may hold letters, digits and "
                         f". _ : @ - (at most 64): choose one with --agent-id")
    source = ("--agent-id" if explicit else "the instance id" if info.get("id")
              else "HOSTNAME:PORT")
    emit = log.warn if failed else log.info
    emit("{how}; agent id {agent} ({source})", how=how, agent=chosen.agent_id,
         source=source)
    return chosen
