def main() -> None:
    from assignment.bootstrap import AssignmentSettings, bootstrap
    from guichet_runtime.service import main as run

    run(AssignmentSettings, bootstrap)


if __name__ == "__main__":
    main()
