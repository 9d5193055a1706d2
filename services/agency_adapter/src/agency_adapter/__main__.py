from guichet_runtime.service import serve


def main() -> None:
    from agency_adapter.bootstrap import AdapterSettings, bootstrap

    settings = AdapterSettings()
    serve(bootstrap(settings), settings)


if __name__ == "__main__":
    main()
