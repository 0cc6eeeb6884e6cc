"""Reports: a shared PDF page template (`pdf`), matplotlib charts (`charts`) and the reports built on them.

Modules are imported by name (`from surveillance_pipeline.reporting.training import write_training_report`)
so that importing this package stays cheap: reportlab and matplotlib load only where they are used.
"""
