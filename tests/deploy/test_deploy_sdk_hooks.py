"""The Deploy operators extend the MONAI Deploy SDK through its public methods; each private hook they still
override or read is listed here with the reason, and pinned against the installed SDK (skipped without
requirements-deploy.txt locally, failed under CI)."""

from __future__ import annotations

import ast
import inspect

from tests.helpers import REPO, require_module

DEPLOY = REPO / "hkafusion_monai" / "deploy"

#: private SDK members the operators use: {(SDK class, member): why no public extension point does it}
PRIVATE_HOOKS = {
    ("DICOMDataLoaderOperator", "_list_files"): (
        "how the input folder is listed: the SDK's listing recurses through link loops until memory runs out "
        "and follows links out of the folder; its public load_data_to_studies() would otherwise be copied whole"
    ),
}


def _private_members_used() -> set[str]:
    """``self._x`` / ``super()._x`` read or defined in the deploy package, less the package's own privates."""
    used, own = set(), set()
    for path in DEPLOY.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_"):
                own.add(node.name)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                if isinstance(base, ast.Name) and base.id == "self" or isinstance(base, ast.Call):
                    used.add(node.attr)
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                        own.add(t.attr)
    overridden = {name for (_, name) in PRIVATE_HOOKS}
    return (used - own) | (overridden & own)


def test_only_the_listed_private_sdk_hooks_are_used() -> None:
    assert _private_members_used() <= {name for (_, name) in PRIVATE_HOOKS}


def test_the_private_hooks_are_still_the_sdks() -> None:
    require_module("monai.deploy.core", "requirements-deploy.txt: monai-deploy-app-sdk")
    from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

    from hkafusion_monai.deploy.operators.study_loader_operator import StudyLoaderOperator

    sdk = {"DICOMDataLoaderOperator": DICOMDataLoaderOperator}
    for (cls, name), _why in PRIVATE_HOOKS.items():
        hook = getattr(sdk[cls], name)
        assert list(inspect.signature(hook).parameters) == ["self", "path", "files"], (cls, name)
        # the SDK still lists the input folder through the hook
        assert f"self.{name}(" in inspect.getsource(sdk[cls]), (cls, name)
    assert StudyLoaderOperator._list_files is not DICOMDataLoaderOperator._list_files
