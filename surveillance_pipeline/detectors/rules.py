"""`RuleBasedDetector`: runs every enabled rule detector on a day and returns merged findings and alerts.

Each detector tests one typology's definition (see its module) and returns findings; the orchestrator gathers
them, merges overlapping findings of one pattern, symbol and account set into one alert per episode, and
shapes them to the alert contract with the thresholds that produced them. A detector that fails raises,
naming itself: alerts are never silently missing a typology.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import polars as pl

from surveillance_pipeline.detectors.alerts import MERGED, findings_to_alerts, merge_findings
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs, DetectorSettings, Finding
from surveillance_pipeline.detectors.settings import RULES, RulesSettings

RULES_MODEL_VERSION = "rules"
# Detectors that compare an account across symbols; every other one judges each symbol on its own.
CROSS_SYMBOL = frozenset({"excessive_trading"})


class DetectorError(RuntimeError):
    """A rule detector failed; the message names it."""


@dataclass(frozen=True)
class RuleRun:
    findings: pl.DataFrame  # every enabled detector's raw findings (FINDING_SCHEMA)
    merged: pl.DataFrame  # one per episode (FINDING_SCHEMA + merged_findings)
    alerts: pl.DataFrame  # the alert contract (detectors.alerts.ALERT_SCHEMA)
    ran: tuple[str, ...]  # the detectors that ran, by settings name

    def counts(self) -> dict[str, int]:
        """Alerts per pattern."""
        if self.alerts.is_empty():
            return {}
        return dict(self.alerts.group_by("pattern").len().sort("pattern").iter_rows())


class RuleBasedDetector:
    def __init__(self, settings: RulesSettings | None = None) -> None:
        self.settings = settings or RulesSettings()

    def enabled(self) -> list[tuple[str, Callable, DetectorSettings]]:
        chosen = []
        for name, detect in RULES.items():
            detector_settings = getattr(self.settings, name)
            if detector_settings.enabled:
                chosen.append((name, detect, detector_settings))
        return chosen

    def run(self, inputs: DetectionInputs) -> RuleRun:
        found, thresholds, ran = [], {}, []
        self._detect(inputs, self.enabled(), found, thresholds, ran)
        return self._finish(found, thresholds, ran)

    def run_in_batches(self, batches: Iterable[DetectionInputs],
                       whole_day_trades: Callable[[], DetectionInputs]) -> RuleRun:
        """The same alerts as `run` on the whole day, with memory bounded by a batch of symbols: every
        detector that judges a symbol on its own runs batch by batch (`batches` yields the day's trades, orders
        and history of a few symbols at a time), those that compare an account across symbols
        (CROSS_SYMBOL) run once on `whole_day_trades()` (the day's trades of every symbol)."""
        enabled = self.enabled()
        per_symbol = [entry for entry in enabled if entry[0] not in CROSS_SYMBOL]
        across = [entry for entry in enabled if entry[0] in CROSS_SYMBOL]
        found, thresholds, ran = [], {}, []
        for inputs in batches:
            self._detect(inputs, per_symbol, found, thresholds, ran)
        if across:
            self._detect(whole_day_trades(), across, found, thresholds, ran)
        return self._finish(found, thresholds, list(dict.fromkeys(ran)))

    @staticmethod
    def _detect(inputs: DetectionInputs, detectors, found: list, thresholds: dict, ran: list) -> None:
        for name, detect, detector_settings in detectors:
            try:
                findings = detect(inputs, detector_settings)
            except Exception as error:
                raise DetectorError(f"rule detector '{name}' failed: {error}") from error
            found.append(findings.select(list(FINDING_SCHEMA)).cast(FINDING_SCHEMA))
            for pattern in findings.get_column(Finding.PATTERN).unique().to_list():
                thresholds[pattern] = detector_settings.model_dump()
            ran.append(name)

    def _finish(self, found: list, thresholds: dict, ran: list) -> RuleRun:
        # in a fixed order whatever the batches were: merged evidence (and its truncation) does not depend on them
        findings = (pl.concat(found).sort(Finding.SYMBOL, Finding.PATTERN, Finding.WINDOW_START, maintain_order=True)
                    if found else pl.DataFrame(schema=FINDING_SCHEMA))
        merged = merge_findings(findings, self.settings.merge_gap_seconds)
        alerts = findings_to_alerts(merged.drop(MERGED), thresholds, high=self.settings.risk_high,
                                    medium=self.settings.risk_medium, max_evidence=self.settings.max_evidence,
                                    model_version=RULES_MODEL_VERSION)
        return RuleRun(findings=findings, merged=merged, alerts=alerts, ran=tuple(dict.fromkeys(ran)))


def symbol_batches(rows_by_symbol: dict[str, int], max_rows: int) -> list[list[str]]:
    """Symbols grouped so that each group holds at most `max_rows` rows (a bigger symbol is a group alone),
    largest first."""
    batches: list[list[str]] = []
    sizes: list[int] = []
    for symbol, rows in sorted(rows_by_symbol.items(), key=lambda item: (-item[1], item[0])):
        for i, size in enumerate(sizes):
            if size + rows <= max_rows:
                batches[i].append(symbol)
                sizes[i] += rows
                break
        else:
            batches.append([symbol])
            sizes.append(rows)
    return batches
