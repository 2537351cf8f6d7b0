"""Labeling jobs: work queues for annotators, review of disagreements, progress and agreement, export.

An admin creates a job (`jobs`: a task, items from a folder, uploads, an index or a query's results, a
label set or prompts, an overlap). Annotators ask for their next item (`queue`), see the model's
prediction pre-filled (made by the matching tab's service, through the task table), accept or correct it,
or skip it and come back later. Reviewers settle disagreements (`review`); their decisions are stored
beside the original labels, which stay. `stats` measures progress and agreement (`agreement` holds the
formulas); `export` writes the final labels as datasets. Every function checks the caller's role first
(`accounts.require_role`) and returns data: the UI and the CLI format it.

Import the modules explicitly: `from mmdemo.labeling import queue`.
"""
