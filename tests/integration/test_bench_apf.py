"""The scale benchmark reads the real API server's priority and fairness: the bot's own
requests show in the priority level that served them."""

from __future__ import annotations

from kubernetes import client

from bench.apf import Level, levels, server_metrics, window_line
from tests.support.real_cluster import RealCluster

REQUESTS = 5


def test_the_bots_requests_show_in_the_level_that_served_them(cluster: RealCluster) -> None:
    admin = cluster.world.admin
    before = levels(server_metrics(admin))
    bot = client.ApiClient(cluster.bot_configuration())
    try:
        objects = client.CustomObjectsApi(bot)
        for _ in range(REQUESTS):
            objects.list_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", "default", "httproutes")
    finally:
        bot.close()  # type: ignore[no-untyped-call]
    after = levels(server_metrics(admin))
    grown = {name: after[name].dispatched - before.get(name, Level()).dispatched
             for name in after if name != "exempt"}  # the admin's own reads are exempt
    assert sum(grown.values()) >= REQUESTS, grown
    served = [name for name, count in grown.items() if count > 0]
    assert all(after[name].seats > 0 for name in served)
    assert all(f"{name} (" in window_line(before, after) for name in served)
