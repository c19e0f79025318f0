"""Command 1's RabbitMQ management UI: enabled when it can be, and why not when it cannot."""

from devstack.management import management_ui


def test_an_answering_ui_is_shown_without_enabling_anything() -> None:
    def refuse() -> tuple[bool, str]:
        raise AssertionError("enable must not run")

    outcome = management_ui("127.0.0.1", lambda host, port: port == 15672, enable=refuse)
    assert outcome.url == "http://127.0.0.1:15672"


def test_a_local_broker_gets_the_plugin_enabled_then_the_ui_shown() -> None:
    enabled: list[bool] = []

    def enable() -> tuple[bool, str]:
        enabled.append(True)
        return True, "enabled"

    outcome = management_ui("localhost", lambda host, port: bool(enabled), enable=enable)
    assert enabled and outcome.url == "http://localhost:15672"
    assert "enabled just now" in outcome.note


def test_when_it_cannot_be_enabled_it_says_why_and_how() -> None:
    outcome = management_ui(
        "127.0.0.1", lambda host, port: False, enable=lambda: (False, "permission denied")
    )
    assert outcome.url is None
    assert "permission denied" in outcome.note
    assert "rabbitmq-plugins enable --online rabbitmq_management" in outcome.note
    remote = management_ui("broker.internal", lambda host, port: False)
    assert remote.url is None and "on the broker" in remote.note
