"""Helpers the tests share: real server processes, JS clients, fakes, bounded waits."""
