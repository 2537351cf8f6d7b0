"""Gradio components. Tabs call plain functions; no model or SQL code lives here."""
