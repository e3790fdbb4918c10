"""The spec set: a release stays watched however its file goes bad (issue 21: #5, #8, #10, #11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from builders import image
from ecsop.controller.specset import SpecKeeper
from ecsop.spec import loader


def doc(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ecsop.dev/v1",
        "kind": "ServiceRelease",
        "metadata": {"name": name},
        "spec": {"cluster": "prod", "service": name, "containers": {"app": image("v1")}, **spec},
    }


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    path = tmp_path / "specs"
    path.mkdir()
    (path / "shop.yaml").write_text(yaml.safe_dump(doc("shop")))
    (path / "cart.yaml").write_text(yaml.safe_dump(doc("cart")))
    return path


def keeper(path: Path) -> SpecKeeper:
    kept = SpecKeeper(path, default_region="us-east-1", allow_mutable_tags=False)
    kept.reload()
    return kept


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param("apiVersion: [unclosed\n", id="yaml-syntax-error"),
        pytest.param("", id="emptied"),
        pytest.param("\xff\xfe", id="not-utf8"),
        pytest.param(yaml.safe_dump(doc("shop", bogus=1)), id="schema-error"),
    ],
)
def test_a_file_gone_bad_keeps_its_last_valid_release_watched(specs: Path, breakage: str) -> None:
    kept = keeper(specs)
    (specs / "shop.yaml").write_bytes(breakage.encode("latin-1"))
    changes = kept.reload()
    assert "shop" in changes.names
    entry = kept.entry("shop")
    assert entry is not None and entry.loaded is not None and not entry.removed
    assert entry.problems, "the problem is reported"
    assert kept.entry("cart") is not None and not kept.entry("cart").problems  # type: ignore[union-attr]


def test_a_deleted_file_is_removed_and_kept_until_let_go(specs: Path) -> None:
    kept = keeper(specs)
    (specs / "shop.yaml").unlink()
    kept.reload()
    entry = kept.entry("shop")
    assert entry is not None and entry.removed and entry.loaded is not None
    assert "shop" in [loaded.name for loaded in kept.watched()]
    kept.let_go("shop")
    assert kept.entry("shop") is None
    kept.let_go("cart")  # only removed releases are let go
    assert kept.entry("cart") is not None


def test_a_renamed_release_on_the_same_service_is_claimed_elsewhere(specs: Path) -> None:
    kept = keeper(specs)
    renamed = doc("shop-v2")
    renamed["spec"]["service"] = "shop"
    (specs / "shop.yaml").write_text(yaml.safe_dump(renamed))
    kept.reload()
    old = kept.entry("shop")
    assert old is not None and old.removed and old.claimed_elsewhere


def test_a_directory_that_cannot_be_read_changes_nothing(specs: Path, tmp_path: Path) -> None:
    """git-sync's symlink missing mid-swap must never look like every release removed."""
    kept = keeper(specs)
    specs.rename(tmp_path / "elsewhere")
    changes = kept.reload()
    assert changes.names == ()
    assert all(not e.removed for e in (kept.entry("shop"), kept.entry("cart")) if e)


# --- identity: one service, however it is spelled (#8, #11) ------------------------------

ACCOUNT = "123456789012"


def load(tmp_path: Path, *docs: dict[str, Any]) -> loader.SpecSet:
    path = tmp_path / "identity"
    path.mkdir()
    (path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    return loader.load([path], default_region="us-east-1")


def test_a_cluster_named_by_arn_is_the_same_service_as_by_name(tmp_path: Path) -> None:
    by_arn = doc("b", cluster=f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/prod")
    by_arn["spec"]["service"] = "a"
    found = load(tmp_path, doc("a"), by_arn)
    assert not found.releases
    assert any("also managed by" in e.message for e in found.errors)


def test_a_service_named_by_arn_is_the_same_service_as_by_name(tmp_path: Path) -> None:
    by_arn = doc("b")
    by_arn["spec"]["service"] = f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/prod/a"
    found = load(tmp_path, doc("a", roleArn=f"arn:aws:iam::{ACCOUNT}:role/deploy"), by_arn)
    assert not found.releases


def test_the_daemons_own_account_is_the_same_as_an_arns_when_known(tmp_path: Path) -> None:
    by_arn = doc("b", cluster=f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/prod")
    by_arn["spec"]["service"] = "a"
    path = tmp_path / "known"
    path.mkdir()
    (path / "all.yaml").write_text(yaml.safe_dump_all([doc("a"), by_arn]))
    elsewhere = loader.load([path], default_region="us-east-1", default_account="999999999999")
    assert set(elsewhere.releases) == {"a", "b"}
    same = loader.load([path], default_region="us-east-1", default_account=ACCOUNT)
    assert not same.releases


def test_the_same_names_in_two_accounts_are_two_services(tmp_path: Path) -> None:
    one = doc("one", roleArn="arn:aws:iam::111111111111:role/deploy")
    two = doc("two", roleArn="arn:aws:iam::222222222222:role/deploy")
    two["spec"]["service"] = "one"
    found = load(tmp_path, one, two)
    assert set(found.releases) == {"one", "two"}, found.errors


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(
            {"cluster": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod", "region": "us-east-1"},
            "spec.region is us-east-1",
            id="arn-region-disagrees",
        ),
        pytest.param(
            {
                "cluster": f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/prod",
                "roleArn": "arn:aws:iam::999999999999:role/deploy",
            },
            "account 999999999999",
            id="arn-account-disagrees-with-role",
        ),
        pytest.param(
            {"service": f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/staging/x"},
            "cluster 'staging'",
            id="service-arn-in-another-cluster",
        ),
    ],
)
def test_inconsistent_arns_are_spec_errors(
    tmp_path: Path, spec: dict[str, Any], words: str
) -> None:
    found = load(tmp_path, doc("x", **spec))
    assert not found.releases
    assert any(words in e.message for e in found.errors), found.errors
