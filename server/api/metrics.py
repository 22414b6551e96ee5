"""Prometheus metrics, in the app's own registry: answers and failures by kind, answer latency by source, and the
teacher's ledger, the memory's size and the threshold read when Prometheus scrapes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import MenteeError

if TYPE_CHECKING:
    from ..service import Mentee
    from ..serving.router import RoutedAnswer


class Metrics:
    """Prometheus metrics in the app's own registry (no process-wide globals)."""

    def __init__(self, mentee: Mentee) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.mentee = mentee
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mentee_answers", "Answers by source.", ["source", "low_confidence"], registry=self.registry
        )
        self.failures = Counter(
            "mentee_failed_requests", "Chat requests that got no answer.", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "mentee_answer_seconds",
            "Time to answer a chat request, by source.",
            ["source"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.registry.register(_StateCollector(mentee))

    def answered(self, routed: RoutedAnswer, seconds: float) -> None:
        self.requests.labels(routed.source, str(routed.low_confidence).lower()).inc()
        self.latency.labels(routed.source).observe(seconds)

    def failed(self, reason: str) -> None:
        self.failures.labels(reason).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector:
    """Teacher ledger and memory size, read when Prometheus scrapes."""

    def __init__(self, mentee: Mentee) -> None:
        self.mentee = mentee

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        teacher = self.mentee.guarded_teacher
        if teacher is not None:
            totals = teacher.ledger.totals()
            calls = CounterMetricFamily("mentee_teacher_calls", "Teacher calls by outcome.", labels=["outcome"])
            calls.add_metric(["answer"], totals["calls"] - totals["errors"] - totals["unusable"])
            calls.add_metric(["unusable"], totals["unusable"])
            calls.add_metric(["error"], totals["errors"])
            yield calls
            tokens = CounterMetricFamily("mentee_teacher_tokens", "Teacher tokens.", labels=["direction"])
            tokens.add_metric(["in"], totals["tokens_in"])
            tokens.add_metric(["out"], totals["tokens_out"])
            yield tokens
            yield CounterMetricFamily("mentee_teacher_cost", "Teacher cost (config prices).", value=totals["cost"])
        if self.mentee.memory is not None:
            try:
                size = self.mentee.memory.count()
            except MenteeError:
                size = None  # /health says why
            if size is not None:
                yield GaugeMetricFamily("mentee_memory_items", "Remembered items (this namespace).", value=size)
        threshold = self.mentee.threshold
        yield GaugeMetricFamily("mentee_confidence_threshold", "The student's confidence threshold.", value=threshold)
