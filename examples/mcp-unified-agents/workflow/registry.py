"""Workflows by name; each takes a task description and returns text."""

from workflow import plan, review

WORKFLOWS = {"review": review.run, "plan": plan.run}


def get(name):
    return WORKFLOWS[name]
