"""Pipeline stages: files in, files out, resumable; CLI stage modules expose ``configure_parser``/``run``."""
