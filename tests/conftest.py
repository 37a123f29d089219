import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter):
    # issue 25: say loudly when the NNCodec reference venv was not available
    import sys
    mod = sys.modules.get("_nnc")
    for why in getattr(mod, "UNAVAILABLE", ()):
        terminalreporter.write_sep("!", "NNCodec interoperability tests SKIPPED", red=True)
        terminalreporter.write_line(why)

    # issue 17: the ONNX node-case gate's counts in CI's -q log, not only pass/fail
    gate = sys.modules.get("_onnx_gate")
    if gate is not None and gate.RESULTS:
        terminalreporter.write_sep("-", "ONNX node-case gate (tests/test_onnx_node_gate.py)")
        for line in gate.summary_lines(gate.RESULTS):
            terminalreporter.write_line(line)
