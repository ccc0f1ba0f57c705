"""A real browser and a real JupyterLab for the gateway's tests: Debian's `chromium` and
`chromium-driver` driven by Selenium (headless, offline), and `jupyter lab` pointed at a
gateway with `--gateway-url`."""

import json
import os
import secrets
import shutil
import urllib.request

from sorna.testing.processes import LOOPBACK, ProcessError
from sorna.testing.servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = "apt-get install chromium chromium-driver; pip install -e '.[test]'"


def browser_missing():
    """Why no browser test can run here (None when one can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is missing ({INSTALL_HINT})"
    try:
        import selenium
        del selenium  # (only whether it is there)
    except ImportError:
        return f"selenium is not installed ({INSTALL_HINT})"
    if shutil.which("jupyter-lab") is None:
        return f"jupyter-lab is not installed ({INSTALL_HINT})"
    return None


def chromium(tmpdir, width=1400, height=1000):
    """A headless Chromium under Selenium (the driver given by path: nothing is
    downloaded). Its temporary files (a profile, a singleton folder that `quit()` leaves
    behind) go under `tmpdir`, which the caller removes."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", f"--window-size={width},{height}",
                 "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(
        CHROMEDRIVER, env=dict(os.environ, TMPDIR=tmpdir)))


def notebook(kernel, display, cells):
    """An .ipynb document for `kernel` (a kernelspec name) with code `cells`."""
    return {"cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}",
                       "metadata": {}, "outputs": [], "source": source}
                      for i, source in enumerate(cells)],
            "metadata": {"kernelspec": {"name": kernel, "display_name": display}},
            "nbformat": 4, "nbformat_minor": 5}


class JupyterLab(ServerProcess):
    """`jupyter lab` whose kernels are the gateway's (`--gateway-url`), with its own
    folders, a token of its own (`url` carries it) and `window.jupyterapp` exposed."""

    name = "jupyter-lab"
    install_hint = INSTALL_HINT
    short_name = "jupyterlab"
    ready_what = "serve its API"
    start_timeout = 90.0
    poll_interval = 0.2

    def __init__(self, gateway_url, gateway_token, **kw):
        super().__init__(**kw)
        self.gateway_url = gateway_url
        self.gateway_token = gateway_token
        self.token = secrets.token_hex(16)
        self.root = os.path.join(self.workdir, "notebooks")
        os.makedirs(self.root)

    @property
    def base(self):
        return f"http://{LOOPBACK}:{self.port}"

    def page(self, path):
        return f"{self.base}/lab/tree/{path}?token={self.token}"

    def command(self):
        return [self.executable, "--no-browser", "--allow-root", f"--ip={LOOPBACK}",
                f"--port={self.port}", "--ServerApp.port_retries=0",
                f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
                f"--gateway-url={self.gateway_url}",
                f"--GatewayClient.auth_token={self.gateway_token}",
                "--LabApp.expose_app_in_browser=True"]

    def popen_env(self):
        home = os.path.join(self.workdir, "home")
        return dict(os.environ, HOME=home, JUPYTER_CONFIG_DIR=os.path.join(home, "config"),
                    JUPYTER_DATA_DIR=os.path.join(home, "data"),
                    JUPYTER_RUNTIME_DIR=os.path.join(home, "runtime"),
                    JUPYTER_PLATFORM_DIRS="1")

    def ready(self):
        try:
            with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}",
                                        timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def write_notebook(self, name, document):
        with open(os.path.join(self.root, name), "w", encoding="utf-8") as f:
            json.dump(document, f)
        return name


__all__ = ["JupyterLab", "ProcessError", "browser_missing", "chromium", "notebook"]
