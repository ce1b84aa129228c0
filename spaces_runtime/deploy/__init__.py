"""Deploying spaces: the pipeline (upload → version → spec → plan → environment → launch), lifecycle commands
(restart, pause, delete, restore, wake), and the gateway's view of where a space lives.

The pipeline owns a space's stage while it builds; the supervisor owns it while the app starts and runs. Every
stage change goes through one ``StageSink`` (store, events, listeners such as the gateway's address cache).
"""
