"""Settings read from the environment: empty values that mean something, secrets never shown."""

from __future__ import annotations

import pytest

from flows.runtime.settings import Settings, mask_url
from twin.errors import ConfigurationError


def test_empty_group_means_a_plain_subscription():
    assert Settings.from_env({"TWIN_MQTT_GROUP": ""}).mqtt_group == ""
    assert Settings.from_env({}).mqtt_group is None  # unset: decided by the engine
    assert Settings.from_env({"TWIN_MQTT_GROUP": "g2"}).mqtt_group == "g2"


def test_the_group_is_plain_alone_shared_in_a_cluster_and_never_empty_in_one():
    from flows.engine import subscription_group

    assert subscription_group(Settings.from_env({}), 1) == ""
    assert subscription_group(Settings.from_env({}), 3) == "twinstream"
    assert subscription_group(Settings.from_env({"TWIN_MQTT_GROUP": "g"}), 1) == "g"
    with pytest.raises(ConfigurationError, match="every process"):
        subscription_group(Settings.from_env({"TWIN_MQTT_GROUP": ""}), 2)


def test_other_empty_variables_keep_their_defaults():
    settings = Settings.from_env({"TWIN_BATCH_SIZE": "", "TWIN_MQTT_CLIENT_ID": ""})
    assert settings.batch_size == 16_000


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://ops:s3cret@broker:1883", "mqtt://ops:***@broker:1883"),
        (
            "postgresql://u:p%40ss@db/twin?sslmode=require",
            "postgresql://u:***@db/twin?sslmode=require",
        ),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("mqtt://broker:1883", "mqtt://broker:1883"),
        ("mqtt://ops@broker", "mqtt://ops@broker"),
    ],
)
def test_urls_are_shown_with_the_password_masked(url, shown):
    assert mask_url(url) == shown


@pytest.mark.parametrize(
    "url", ["mqtt://ops:s3cret@broker:99999", "http://ops:s3cret@broker", "mqtt://ops:s3cret@:1"]
)
def test_a_bad_mqtt_url_never_prints_its_password(url):
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({"TWIN_MQTT_URL": url})
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
