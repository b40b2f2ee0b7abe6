UPDATE decompositions SET criterion = '''`touch PWNED`''';
