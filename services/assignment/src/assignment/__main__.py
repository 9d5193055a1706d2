from guichet_runtime.service import serve


def main() -> None:
    from assignment.bootstrap import AssignmentSettings, bootstrap

    settings = AssignmentSettings()
    serve(bootstrap(settings), settings)


if __name__ == "__main__":
    main()
