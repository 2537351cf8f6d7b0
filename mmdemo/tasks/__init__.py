"""The tasks mmdemo serves: captioning, VQA, video classification (with fusion), the checks on corrections."""
