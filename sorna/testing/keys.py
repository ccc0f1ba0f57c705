"""The keys of the clusters that tests and benchmarks start: one folder per run,
made by `sorna keys init` on first use, named by $SORNA_KEYS so that every server,
client and child process of the run finds it (and nothing finds a developer's own).

    folder = use_test_keys()
    secure(zmq_socket, "manager")  # a raw socket that may talk to the test cluster
"""

import atexit
import os
import shutil
import tempfile

import zmq.auth

from sorna import keys

_folder = None


def use_test_keys():
    """Make (once) and return the run's keys folder; point $SORNA_KEYS at it. A child
    process (a benchmark's simulators) uses its parent's, named by $SORNA_TEST_KEYS."""
    global _folder
    if _folder is None:
        inherited = os.environ.get("SORNA_TEST_KEYS")
        if inherited and os.path.exists(os.path.join(inherited, "manager.key")):
            _folder = inherited
        else:
            parent = tempfile.mkdtemp(prefix="sorna-test-keys-")
            atexit.register(shutil.rmtree, parent, True)
            _folder = os.path.join(parent, "keys")
            keys.init(_folder)
    os.environ["SORNA_KEYS"] = os.environ["SORNA_TEST_KEYS"] = _folder
    os.environ.pop("SORNA_INSECURE", None)
    os.environ.pop("SORNA_KEY_NAME", None)
    return _folder


def pair(relative):
    """(public, secret) of a pair in the test folder, e.g. "clients/client"."""
    return zmq.auth.load_certificate(os.path.join(use_test_keys(), f"{relative}.key_secret"))


def server_key(role):
    """The public key of the manager ("manager") or of the test agents ("agent")."""
    return pair("manager" if role == "manager" else "agents/agent")[0]


def secure(sock, role, client="clients/client"):
    """Make a raw ZMQ socket a CurveZMQ client of `role`'s port, with `client`'s pair;
    return it. Call before connect."""
    client_curve(role, client).apply(sock)
    return sock


def client_curve(role="manager", client="clients/client"):
    """A sorna.curve.ClientCurve with `client`'s pair, towards `role`'s port."""
    from sorna.curve import ClientCurve

    public, secret = pair(client)
    return ClientCurve(public, secret, server_key(role))


def agent_curve():
    """What a test agent dials the manager with."""
    return client_curve("manager", "agents/agent")
