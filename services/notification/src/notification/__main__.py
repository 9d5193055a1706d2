def main() -> None:
    from guichet_runtime.service import main as run
    from notification.bootstrap import bootstrap
    from notification.settings import NotificationSettings

    run(NotificationSettings, bootstrap)


if __name__ == "__main__":
    main()
