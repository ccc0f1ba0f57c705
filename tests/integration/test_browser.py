"""The gateway in a real browser: JupyterLab (its server pointed at the gateway with
--gateway-url) runs notebook cells in two languages, shows a value as `Out`, one figure
per plot and completions after Tab, and the dashboard follows the cluster live. Headless Chromium under Selenium; screenshots go to the test's folder."""

import os
import shutil
import tempfile
import time

from sorna.testing.browser import JupyterLab, chromium, notebook
from tests.integration.test_gateway import GatewayCase
from tests.support import require_browser, temp_folder

PAGE_TIMEOUT = 90.0

# The notebook in front: its path, its kernel's state, its outputs' text.
NOTEBOOK_STATE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const session = panel && panel.sessionContext && panel.sessionContext.session;
const kernel = session && session.kernel;
if (!kernel || !panel.context) return null;
return {path: panel.context.path, kernel: kernel.connectionStatus + "/" + kernel.status,
        outputs: [...panel.node.querySelectorAll(".jp-OutputArea-output")]
                 .map((e) => e.textContent).join("\\n"),
        prompts: [...panel.node.querySelectorAll(".jp-OutputArea-prompt")]
                 .map((e) => e.textContent)};
"""


class BrowserCase(GatewayCase):
    def setUp(self):
        require_browser()
        super().setUp()
        self.shots = temp_folder(self)
        # Short: Chromium puts a Unix socket there, and a trial folder's path is too long.
        browser_tmp = tempfile.mkdtemp(prefix="sorna-chromium-")
        self.addCleanup(shutil.rmtree, browser_tmp, ignore_errors=True)
        self.driver = chromium(browser_tmp)
        self.addCleanup(self.driver.quit)

    def screenshot(self, name):
        self.driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

    def wait_for(self, condition, what, timeout=PAGE_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = condition()
            if last:
                return last
            time.sleep(0.2)
        self.screenshot("timeout")
        self.fail(f"the page did not show {what} within {timeout:g} s (screenshot in "
                  f"{self.shots})")

    def text_of(self, element_id):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id).text


class JupyterLabTests(BrowserCase):
    def test_notebook_cells_run_in_two_languages(self):
        lab = JupyterLab(self.gateway.url, self.gateway.token)
        self.addCleanup(lab.remove)
        lab.start()
        for kernel, display, cells, expected in (
                ("python3", "Python 3 (Sorna)", ["x = 6\nprint(x * 7)", "x * 7 + 1"],
                 ("42", "43")),
                ("nodejs", "Node.js (Sorna)",
                 ["console.log([1, 2, 3].map(n => n * 2).join(','))",
                  "[1, 2, 3].map(n => n * 3).join('+')"], ("2,4,6", "'3+6+9'"))):
            name = lab.write_notebook(f"{kernel}.ipynb", notebook(kernel, display, cells))
            self.driver.get(lab.page(name))

            def ready():
                state = self.driver.execute_script(NOTEBOOK_STATE)
                return state and state["path"] == name and state["kernel"] == \
                    "connected/idle"

            self.wait_for(ready, f"the {kernel} notebook with its kernel idle")
            self.driver.execute_script(
                "window.jupyterapp.commands.execute('notebook:run-all-cells')")
            self.wait_for(lambda: all(e in self.driver.execute_script(
                NOTEBOOK_STATE)["outputs"] for e in expected),
                f"the {kernel} cells' outputs {expected!r}")
            # The second cell's value is an execute_result: JupyterLab shows it as Out
            # ("[2]:"); a print has no prompt.
            self.assertEqual(self.driver.execute_script(NOTEBOOK_STATE)["prompts"],
                             ["", "[2]:"])
            self.screenshot(f"jupyterlab-{kernel}")
        self.assertEqual(len(self.http.get("/api/kernels")[1]), 2)
        self.assertIn("create of kernel", self.manager.log())


    def test_tab_completes_and_each_plot_is_one_figure(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        lab = JupyterLab(self.gateway.url, self.gateway.token)
        self.addCleanup(lab.remove)
        lab.start()
        name = lab.write_notebook("plots.ipynb", notebook("python3", "Python 3 (Sorna)", [
            "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.figure()\n"
            "plt.bar([1, 2], [3, 4]);", "pri"]))
        self.driver.get(lab.page(name))
        self.wait_for(lambda: (lambda s: s and s["path"] == name and s["kernel"] ==
                               "connected/idle")(self.driver.execute_script(NOTEBOOK_STATE)),
                      "the notebook with its kernel idle")
        self.driver.execute_script(
            "window.jupyterapp.commands.execute('notebook:run-cell')")  # the first

        def figures():
            outputs = self.driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
            return [len(o.find_elements(By.CSS_SELECTOR, "img, svg")) for o in outputs]

        self.wait_for(lambda: len(figures()) >= 2, "the two figures")
        self.assertEqual(figures(), [1, 1], "one output, with one image, per figure")
        self.screenshot("two-figures")
        # What the page's kernel connection hears (JupyterLab's own client).
        self.driver.execute_script(
            "window.sornaReplies = []; const kernel = window.jupyterapp.shell.currentWidget"
            ".sessionContext.session.kernel; kernel.anyMessage.connect((_, a) => {"
            "if (a.msg.header.msg_type === 'complete_reply') "
            "window.sornaReplies.push(a.msg.content); });")
        editor = self.driver.find_elements(By.CSS_SELECTOR, ".jp-Cell .cm-content")[1]
        editor.click()
        editor.send_keys(Keys.END, Keys.TAB)
        # Tab asks the kernel: JupyterLab's completer gets the matches. (Headless
        # JupyterLab 4.6 keeps its popup hidden after Tab, with a local ipykernel too,
        # so the popup itself is not what is checked.)
        replies = self.wait_for(lambda: self.driver.execute_script(
            "return window.sornaReplies"), "the complete_reply Tab asked for")
        self.assertIn("print", replies[0]["matches"])
        self.assertEqual((replies[0]["cursor_start"], replies[0]["cursor_end"]), (0, 3))
        self.screenshot("completion")


class DashboardPageTests(BrowserCase):
    def test_the_dashboard_follows_the_cluster_live(self):
        self.driver.get(f"{self.gateway.url}/?token={self.gateway.token}")
        self.wait_for(lambda: self.text_of("agent-count") == "1", "the agent")
        self.assertEqual(self.text_of("kernel-count"), "0")
        self.assertIn(self.agent.agent_id, self.text_of("agents"))
        self.start_kernel()
        self.wait_for(lambda: self.text_of("kernel-count") == "1", "one kernel")
        self.wait_for(lambda: "python3 1" in self.text_of("by-lang"), "python3's kernel")
        self.screenshot("dashboard")

    def test_a_wrong_token_says_so(self):
        self.driver.get(f"{self.gateway.url}/?token=wrong")
        self.wait_for(lambda: "not connected" in self.text_of("state"), "the refusal")
