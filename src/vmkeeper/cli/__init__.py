"""The command-line interface: parse, call one service, render, return an exit code."""
