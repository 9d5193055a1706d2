def main() -> None:
    from guichet_runtime.service import main as run
    from agency_adapter.bootstrap import AdapterSettings, bootstrap

    run(AdapterSettings, bootstrap)


if __name__ == "__main__":
    main()
