UPDATE metrics SET test_acc = NULL;
