import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithRepl(build_py):
    """Ships repl/ (the runner, the language folders) inside the package, as sorna/repl,
    so that `sorna images build` and FakeCluster work from an installed Sorna. An
    editable install reads the checkout's repl/ instead."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            shutil.copytree(Path(__file__).parent / "repl",
                            Path(self.build_lib) / "sorna" / "repl", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(
    name="sorna",
    version="0.1.0",
    description="Sorna: a back-end server of calculation kernels in locked-down containers",
    packages=find_packages(include=["sorna", "sorna.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/sorna_manager.py", "plugins/sorna_agent.py",
                             "plugins/sorna_gateway.py"],
                  "sorna.gateway": ["dashboard.html"]},
    cmdclass={"build_py": BuildWithRepl},
    python_requires=">=3.9",
    install_requires=[
        "tomli>=2; python_version < '3.11'",  # the language folders' language.toml
        "twisted>=22.10",
        "txzmq>=1.0",
        "txredisapi>=1.4",
        "hiredis>=2",  # txredisapi parses replies with it (in C) when it is installed
        "pyzmq>=22",
        "msgpack>=1.2",  # the C unpacker of older ones leaks on refused frames
        "docker>=6.0",
        "boto3>=1.20",
        "prometheus_client>=0.16",
        "autobahn[twisted]>=23",  # the gateway's WebSockets
    ],
    # The tests start an S3-compatible server (moto's server mode) to export files to.
    # The gateway's tests drive it with a WebSocket client, a Piston client library, and
    # JupyterLab in Chromium under Selenium, and Jupyter's conformance suite, nbclient
    # and papermill through jupyter_server's gateway client.
    extras_require={"test": ["moto[server]>=4", "websocket-client>=1.6",
                             "ultra-piston>=1.0", "selenium>=4.10", "jupyterlab>=4.2",
                             "jupyter-kernel-test>=0.7", "papermill>=2.4"]},
    entry_points={"console_scripts": ["sorna = sorna.client.cli:main"]},
)
