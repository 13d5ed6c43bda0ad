echo app-ok > /app.txt
