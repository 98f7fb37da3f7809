"""Unit tests of the PromQL extraction (standard library only):

    python3 -m unittest discover -s deploy/grafana/render
"""

import os
import unittest

import dashboard

JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "breakwater.json")


class Substitute(unittest.TestCase):
    def test_all_variable_forms(self):
        self.assertEqual(
            dashboard.substitute('x{agent=~"$agent"} / y{a="${agent}"} + z{b="${agent:regex}"}', {"agent": "a-1"}, "1m"),
            'x{agent=~"a-1"} / y{a="a-1"} + z{b="a-1"}',
        )

    def test_builtin_intervals(self):
        self.assertEqual(
            dashboard.substitute("rate(x[$__rate_interval]) + rate(y[$__interval])", {}, "20s"),
            "rate(x[20s]) + rate(y[20s])",
        )

    def test_unknown_variable_is_refused(self):
        with self.assertRaises(KeyError):
            dashboard.substitute('x{agent=~"$agnet"}', {"agent": "a"}, "1m")


class Legend(unittest.TestCase):
    def test_format(self):
        self.assertEqual(dashboard.legend("lag p{{partition}} {{ instance }}", {"partition": "2", "instance": "i"}, "q"), "lag p2 i")

    def test_missing_label_is_empty(self):
        self.assertEqual(dashboard.legend("{{agent}} {{window}}", {"agent": "a"}, "q"), "a")

    def test_no_format(self):
        self.assertEqual(dashboard.legend("", {"__name__": "m", "b": "2", "a": "1"}, "q"), '{a="1", b="2"}')
        self.assertEqual(dashboard.legend("", {}, "sum(x)"), "sum(x)")


class Panels(unittest.TestCase):
    def test_collapsed_rows_and_order(self):
        d = {
            "panels": [
                {"type": "timeseries", "id": 2, "title": "B", "gridPos": {"x": 12, "y": 1, "w": 12, "h": 8},
                 "targets": [{"expr": "b", "legendFormat": "{{x}}"}, {"expr": "hidden", "hide": True}]},
                {"type": "row", "id": 9, "title": "Top", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
                {"type": "stat", "id": 1, "title": "A", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
                 "targets": [{"expr": "a"}]},
                {"type": "row", "id": 10, "title": "Folded $agent", "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1},
                 "collapsed": True, "panels": [
                     {"type": "timeseries", "id": 3, "title": "C", "gridPos": {"x": 0, "y": 10, "w": 24, "h": 8},
                      "targets": [{"expr": 'c{agent=~"$agent"}'}]}]},
            ]
        }
        got = dashboard.panels(d, {"agent": "z"})
        self.assertEqual([(p.id, p.row) for p in got], [(1, "Top"), (2, "Top"), (3, "Folded z")])
        self.assertEqual([t.expr for t in got[1].targets], ["b"])
        self.assertEqual(got[2].targets[0].expr, 'c{agent=~"z"}')
        self.assertEqual(got[0].unit, "short")

    def test_shipped_dashboard(self):
        # Every panel of the real dashboard is drawable, has a query, and
        # none is left with an unfilled variable.
        got = dashboard.load(JSON, {"agent": "support-agent-0", "datasource": "prometheus"})
        self.assertGreater(len(got), 10)
        self.assertEqual({p.row for p in got}, {"Fleet overview", "Agent drill-down (support-agent-0)", "Processor health"})
        for p in got:
            self.assertTrue(p.targets, p.title)
            for t in p.targets:
                self.assertNotIn("$", t.expr, p.title)
                self.assertIn("breakwater_", t.expr, p.title)


if __name__ == "__main__":
    unittest.main()
