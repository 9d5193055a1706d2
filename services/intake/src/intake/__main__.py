from guichet_runtime.service import serve


def main() -> None:
    from intake.bootstrap import IntakeSettings, bootstrap

    settings = IntakeSettings()
    serve(bootstrap(settings), settings)


if __name__ == "__main__":
    main()
