pytest_plugins = ["tests.fix_source"]
