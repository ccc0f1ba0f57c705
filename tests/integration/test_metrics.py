"""Prometheus metrics of real manager and agent processes, scraped over HTTP."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from sorna.proto.errors import SornaError
from sorna.testing.processes import LOOPBACK, free_port, wait_until
from tests.integration import ClusterTestCase


def scrape(port):
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as reply:
        return reply.read().decode()


def samples(text):
    """{(name, (sorted label items)): value} of a scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text, name, **labels):
    return samples(text).get((name, tuple(sorted(labels.items()))))


class MetricsTests(ClusterTestCase):
    def test_manager_and_agent_count_what_they_do(self):
        manager_port, agent_port = free_port(), free_port()
        manager, agent = self.start_cluster(
            manager_kw={"extra_args": ["--metrics-port", str(manager_port)]},
            agent_kw={"extra_args": ["--metrics-port", str(agent_port)]})
        client = self.client(manager)
        kernel_id = client.create("python3")["kernel_id"]
        self.assertEqual(client.execute(kernel_id, "print(6*7)")["stdout"], "42\n")
        client.execute(kernel_id, "1/0")  # finished, with an exception
        with self.assertRaises(SornaError):
            client.create("intercal")
        client.destroy(kernel_id)

        text = scrape(manager_port)
        self.assertEqual(value(text, "sorna_manager_creations_total", lang="python3",
                               outcome="created"), 1)
        self.assertEqual(value(text, "sorna_manager_creations_total", lang="other",
                               outcome="client-error"), 1)
        self.assertEqual(value(text, "sorna_manager_creation_seconds_count",
                               lang="python3"), 1)
        self.assertEqual(value(text, "sorna_manager_requests_total", action="create",
                               code="200"), 1)
        self.assertEqual(value(text, "sorna_manager_requests_total", action="destroy",
                               code="200"), 1)
        self.assertGreaterEqual(value(text, "sorna_manager_heartbeats_total",
                                      result="accepted"), 1)
        self.assertEqual(value(text, "sorna_manager_agents"), 1)
        self.assertEqual(value(text, "sorna_manager_slots", kind="capacity"), 4)

        def agent_done():
            text = scrape(agent_port)
            return text if value(text, "sorna_agent_kernels") == 0 else None

        text = wait_until(agent_done, 10, "the agent's kernel gauge to drop to 0")
        self.assertEqual(value(text, "sorna_agent_executions_total", lang="python3",
                               outcome="finished"), 2)
        self.assertEqual(value(text, "sorna_agent_execution_seconds_count",
                               lang="python3"), 2)
        self.assertEqual(value(text, "sorna_agent_requests_total", action="execute",
                               code="200"), 2)
        self.assertEqual(value(text, "sorna_agent_requests_total", action="create_kernel",
                               code="200"), 1)
        self.assertEqual(value(text, "sorna_agent_runs_in_progress"), 0)
        self.assertEqual(value(text, "sorna_agent_queued_runs"), 0)
        for scraped in (text, scrape(manager_port)):
            self.assertNotIn(kernel_id, scraped)  # no ids as labels
            self.assertNotIn(agent.agent_id, scraped)

    def test_a_run_that_times_out_and_a_kernel_destroyed_for_it_are_counted(self):
        agent_port = free_port()
        manager, agent = self.start_cluster(
            agent_kw={"extra_args": ["--metrics-port", str(agent_port)]})
        client = self.client(manager)
        kernel_id = client.create("python3", limits={"exec_timeout": 1})["kernel_id"]
        with self.assertRaises(SornaError) as caught:
            # ignores the interrupt: the kernel is destroyed after the agent's grace
            client.execute(kernel_id, "import signal, time\n"
                                      "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                      "time.sleep(30)")
        self.assertEqual(caught.exception.error, "exec-timeout")

        def counted():
            text = scrape(agent_port)
            done = value(text, "sorna_agent_kernel_deaths_total", reason="exec-timeout")
            return text if done == 1 else None

        text = wait_until(counted, 15, "the kernel's death to be counted")
        self.assertEqual(value(text, "sorna_agent_executions_total", lang="python3",
                               outcome="exec-timeout"), 1)
