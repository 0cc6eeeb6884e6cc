"""Reports: a shared PDF page template (`pdf`), matplotlib charts (`charts`) and the reports built on them:
the model-training report (`training`) and the analyst reports (`analyst`: daily summary, account risk
profile, pattern analysis; each PDF + CSV + JSON).

Modules are imported by name (`from surveillance_pipeline.reporting.training import write_training_report`)
so that importing this package stays cheap: reportlab and matplotlib load only where they are used.
"""
