"""The JSON logs of a real manager and agent: one grep follows a kernel from its creation
to its last execute, and a front-end's trace id names its requests in both."""

from tests.integration import ClusterTestCase


def lines_with(process, text):
    return [e for e in process.json_events() if text in str(e.get("log_text", ""))]


class RequestLogTests(ClusterTestCase):
    def test_one_grep_follows_a_kernel_through_both_logs(self):
        manager, agent = self.start_cluster(manager_kw={"json_log": True},
                                            agent_kw={"json_log": True})
        client = self.client(manager)
        kernel_id = client.create("python3", trace="web-create-1")["kernel_id"]
        client.execute(kernel_id, "x = 6", trace="web-exec-1")
        self.assertEqual(client.execute(kernel_id, "print(x * 7)")["stdout"], "42\n")
        client.destroy(kernel_id, trace="web-destroy-1")

        created = lines_with(manager, kernel_id)
        self.assertIn("web-create-1", [e.get("request") for e in created])
        self.assertIn("web-destroy-1", [e.get("request") for e in created])

        on_agent = [(e.get("action"), e.get("request")) for e in lines_with(agent, kernel_id)
                    if e.get("action")]
        self.assertEqual(on_agent[0], ("create_kernel", "web-create-1"))
        self.assertIn(("execute", "web-exec-1"), on_agent)
        executes = [r for a, r in on_agent if a == "execute"]
        self.assertEqual(len(executes), 2)
        self.assertRegex(executes[1], r"^agent-[0-9a-f]{12}$")  # the agent named it
        self.assertEqual(on_agent[-1], ("destroy_kernel", "web-destroy-1"))

    def test_the_text_log_names_the_request_and_its_kernel(self):
        manager, agent = self.start_cluster()
        client = self.client(manager)
        kernel_id = client.create("python3", trace="web-text-1")["kernel_id"]
        client.destroy(kernel_id)
        self.assertRegex(agent.log(), rf"request web-text-1: create_kernel of kernel "
                                      rf"{kernel_id} answered 200 in [0-9.]+ ms")
        self.assertRegex(manager.log(), rf"request web-text-1: create of kernel "
                                        rf"{kernel_id} answered 200")
