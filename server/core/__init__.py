"""The base every other part stands on: settings, errors, files, lazy imports, child processes, the open-QA answer
rule, QA files and redaction. It imports nothing else of mentee."""
