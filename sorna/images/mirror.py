"""Find the Debian mirror and proxy this machine's apt already uses.

The image builder bootstraps a Debian root file system. Sites differ in which mirror
(and proxy) they can reach, so rather than writing a mirror host into the code we reuse
whatever the machine's own apt configuration points at.
"""

import glob
import os
import re
import subprocess


class MirrorNotFound(Exception):
    """No apt source serves the wanted Debian release."""


def _one_line_sources(text):
    """Yield (types, uris, suites, components) for each one-line `deb ...` entry."""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        # Options such as `[arch=amd64 signed-by=/x.gpg]` sit between type and URI.
        line = re.sub(r"\[[^\]]*\]", " ", line)
        words = line.split()
        if len(words) < 3:
            continue
        yield [words[0]], [words[1]], [words[2]], words[3:]


def _deb822_sources(text):
    """Yield (types, uris, suites, components) for each enabled deb822 stanza."""
    stanzas, fields, key = [], {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key:  # continuation line
            fields[key] += " " + raw.strip()
            continue
        key, _, value = raw.partition(":")
        key = key.strip().lower()
        fields[key] = value.strip()
    for f in stanzas:
        if f.get("enabled", "yes").lower() == "no":
            continue
        yield (f.get("types", "").split(), f.get("uris", "").split(),
               f.get("suites", "").split(), f.get("components", "").split())


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def find_debian_mirror(release="bookworm", etc_apt="/etc/apt"):
    """The URI of the first `deb` source serving `release` with component `main`."""
    entries = []
    entries += _one_line_sources(_read(os.path.join(etc_apt, "sources.list")))
    d = os.path.join(etc_apt, "sources.list.d")
    for path in sorted(glob.glob(os.path.join(d, "*.list"))
                       + glob.glob(os.path.join(d, "*.sources"))):
        parse = _deb822_sources if path.endswith(".sources") else _one_line_sources
        entries += parse(_read(path))
    for types, uris, suites, components in entries:
        if "deb" in types and release in suites and "main" in components and uris:
            return uris[0].rstrip("/")
    raise MirrorNotFound(
        f"no apt source under {etc_apt} serves Debian {release} (component main); "
        f"pass --mirror URL (e.g. the URL of a Debian mirror reachable from here)")


def parse_apt_proxy(dump):
    """Turn `apt-config dump` text into {"http_proxy": ..., "https_proxy": ...}."""
    env = {}
    for line in dump.splitlines():
        m = re.match(r'\s*Acquire::(https?)::Proxy\s+"([^"]*)";', line, re.I)
        if m and m.group(2) and m.group(2).upper() != "DIRECT":
            env[m.group(1).lower() + "_proxy"] = m.group(2)
    return env


def apt_proxy_env():
    """The proxy settings apt uses, as environment variables for debootstrap."""
    try:
        dump = subprocess.run(["apt-config", "dump"], capture_output=True,
                              text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_apt_proxy(dump)
