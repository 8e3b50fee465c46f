document.getElementById("app").textContent = "solad";
