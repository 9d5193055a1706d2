def main() -> None:
    from guichet_runtime.service import main as run
    from intake.bootstrap import IntakeSettings, bootstrap

    run(IntakeSettings, bootstrap)


if __name__ == "__main__":
    main()
