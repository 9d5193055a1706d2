def main() -> None:
    from guichet_runtime.service import main as run
    from notification.bootstrap import NotificationSettings, bootstrap

    run(NotificationSettings, bootstrap)


if __name__ == "__main__":
    main()
