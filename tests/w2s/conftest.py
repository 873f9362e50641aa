import pytest

from aar.w2s.testbeds.registry import load_testbed


@pytest.fixture(scope="session")
def aar_home(tmp_path_factory):
    """A private AAR_HOME for the w2s tests, shared across the session (tiny testbeds build once)."""
    return tmp_path_factory.mktemp("aar_home")


@pytest.fixture(scope="session")
def math_tiny(aar_home):
    return load_testbed("math-tiny", aar_home)


@pytest.fixture(scope="session")
def chat_tiny(aar_home):
    return load_testbed("chat-tiny", aar_home)


@pytest.fixture(scope="session")
def code_tiny(aar_home):
    return load_testbed("code-tiny", aar_home)
