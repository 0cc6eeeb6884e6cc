"""`RuleBasedDetector`: runs every enabled rule detector on a day and returns merged findings and alerts.

Each detector tests one typology's definition (see its module) and returns findings; the orchestrator gathers
them, merges overlapping findings of one pattern, symbol and account set into one alert per episode, and
shapes them to the alert contract with the thresholds that produced them. A detector that fails raises,
naming itself: alerts are never silently missing a typology.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from surveillance_pipeline.detectors.alerts import MERGED, findings_to_alerts, merge_findings
from surveillance_pipeline.detectors.base import FINDING_SCHEMA, DetectionInputs, DetectorSettings, Finding
from surveillance_pipeline.detectors.settings import RULES, RulesSettings

RULES_MODEL_VERSION = "rules"


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
        for name, detect, detector_settings in self.enabled():
            try:
                findings = detect(inputs, detector_settings)
            except Exception as error:
                raise DetectorError(f"rule detector '{name}' failed: {error}") from error
            found.append(findings.select(list(FINDING_SCHEMA)).cast(FINDING_SCHEMA))
            for pattern in findings.get_column(Finding.PATTERN).unique().to_list():
                thresholds[pattern] = detector_settings.model_dump()
            ran.append(name)
        findings = pl.concat(found) if found else pl.DataFrame(schema=FINDING_SCHEMA)
        merged = merge_findings(findings, self.settings.merge_gap_seconds)
        alerts = findings_to_alerts(merged.drop(MERGED), thresholds, high=self.settings.risk_high,
                                    medium=self.settings.risk_medium, max_evidence=self.settings.max_evidence,
                                    model_version=RULES_MODEL_VERSION)
        return RuleRun(findings=findings, merged=merged, alerts=alerts, ran=tuple(ran))
