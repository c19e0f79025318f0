"""The schemathesis CLI, with a guard for a CPython 3.11.7 bug (gh-106905): `ast.parse` can
raise a spurious "AST constructor recursion depth mismatch" SystemError in threaded programs,
and Hypothesis calls it only to describe a lambda for its reprs. A description is not worth a
crashed run; fixed in later CPython releases, where this guard never fires."""

import sys

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _describe_or_give_up(f, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_or_give_up

from schemathesis.cli import schemathesis  # noqa: E402

if __name__ == "__main__":
    sys.exit(schemathesis())
