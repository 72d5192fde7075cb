"""The scale benchmark's reading of the API server's priority and fairness: per priority
level, what a window added to the server's cumulative counters."""

from __future__ import annotations

from bench.apf import levels, window_line

WAIT = "apiserver_flowcontrol_request_wait_duration_seconds"


def _metrics(dispatched: int, quick: int, waited: float, rejected: int) -> str:
    labels = 'flow_schema="service-accounts",priority_level="workload-low"'
    return "\n".join([
        f"# TYPE {WAIT} histogram",
        f'{WAIT}_bucket{{execute="true",{labels},le="0.005"}} {quick}',
        f'{WAIT}_bucket{{execute="true",{labels},le="+Inf"}} {dispatched}',
        f'{WAIT}_sum{{execute="true",{labels}}} {waited}',
        f'{WAIT}_count{{execute="true",{labels}}} {dispatched}',
        f'{WAIT}_count{{execute="false",{labels}}} 7',  # queued, then rejected: not served
        "# TYPE apiserver_flowcontrol_rejected_requests_total counter",
        f'apiserver_flowcontrol_rejected_requests_total{{{labels},reason="queue-full"}} '
        f"{rejected}",
        "# TYPE apiserver_flowcontrol_nominal_limit_seats gauge",
        'apiserver_flowcontrol_nominal_limit_seats{priority_level="workload-low"} 245',
        'apiserver_flowcontrol_nominal_limit_seats{priority_level="exempt"} 0',
        "# TYPE apiserver_request_total counter",
        'apiserver_request_total{code="200",verb="GET"} 1000',
        "",
    ])


def test_a_window_reports_each_level_that_served_what_it_added() -> None:
    before = levels(_metrics(dispatched=100, quick=100, waited=0.01, rejected=1))
    after = levels(_metrics(dispatched=300, quick=250, waited=1.01, rejected=4))
    line = window_line(before, after)
    assert line.endswith("workload-low (245 seats): 200 dispatched, mean wait for a seat "
                         "5.00 ms, 25.0% waited over 5 ms, 3 rejected")
    assert "exempt" not in line  # it served nothing in the window


def test_a_server_without_priority_and_fairness_says_so() -> None:
    assert levels("") == {}
    assert window_line({}, {}).endswith("n/a (no such metrics)")
